"""``/healthz``: can this web process serve, that is, reach PostgreSQL and Redis? It also reports
whether the scheduler (Celery beat) has scanned lately ("scheduler": "ok" or "stale").

docker-compose's healthcheck runs ``python -m fullstackagent.health`` inside the web container,
which calls the endpoint the way a load balancer would. The answer names each dependency and
whether it works, nothing more (no hosts, versions or error texts: the endpoint needs no sign-in).
"""

import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from fullstackagent.availability import is_database_unavailable, reset_database_pools

logger = logging.getLogger(__name__)

OK, UNAVAILABLE = "ok", "unavailable"

# When a scan last ran (epoch seconds, in the cache), written by every beat's scan
# (projects.tasks.scan_resources): the scheduler is stale when it is old. Any beat's scan refreshes
# it, so two beats keep it fresh too.
SCHEDULER_HEARTBEAT_KEY = "fullstackagent:scheduler:last-scan"


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:
        logger.exception("health check: PostgreSQL is unavailable")
        if is_database_unavailable(error):
            reset_database_pools()  # the next check connects afresh (fullstackagent.availability)
        return UNAVAILABLE
    return OK


def _redis() -> str:
    # A write and a read: a Redis that accepts connections but refuses writes (full disk, replica)
    # would break sessions' rate limits and the Celery broker all the same.
    try:
        cache.set("healthz", "1", timeout=10)
        if cache.get("healthz") != "1":
            raise RuntimeError("read back a different value")
    except Exception:
        logger.exception("health check: Redis is unavailable")
        return UNAVAILABLE
    return OK


STALE = "stale"


def scheduler_stale_after() -> float:
    """A scan older than five beat periods (at least 15 s) means no beat is running, or none is
    getting its scans executed."""
    from django.conf import settings

    return max(5 * settings.RECONCILE_INTERVAL_SECONDS, 15.0)


def _scheduler() -> str:
    try:
        last_scan = cache.get(SCHEDULER_HEARTBEAT_KEY)
    except Exception:  # noqa: BLE001 - Redis being down is reported by its own check
        return UNAVAILABLE
    if last_scan is None or time.time() - float(last_scan) > scheduler_stale_after():
        return STALE
    return OK


@never_cache
@require_GET
def healthz(request):
    checks = {"database": _database(), "redis": _redis()}
    healthy = all(result == OK for result in checks.values())
    # The scheduler (Celery beat) is reported, not required: this endpoint says whether this web
    # process can serve, and a stale beat is for monitoring to alert on (and compose to restart),
    # not a reason to take the web server out of rotation.
    checks["scheduler"] = _scheduler()
    return JsonResponse({"status": OK if healthy else UNAVAILABLE, **checks}, status=200 if healthy else 503)


urlpatterns = [path("healthz", healthz, name="healthz")]


def probe_host(allowed_hosts: str) -> str:
    """A Host header the platform accepts: the first concrete ALLOWED_HOSTS entry.

    The probe reaches the web server directly on 127.0.0.1, but Django refuses hosts that ALLOWED_HOSTS
    does not list (400), so it names one that is listed.
    """
    for entry in (item.strip() for item in allowed_hosts.split(",")):
        if not entry or entry == "*":
            continue
        # ".example.com" allows every subdomain of example.com.
        return f"health{entry}" if entry.startswith(".") else entry
    return "localhost"


def probe(url: str, timeout: float = 5.0) -> tuple[bool, str]:
    request = urllib.request.Request(url, headers={"Host": probe_host(os.environ.get("ALLOWED_HOSTS", ""))})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read().decode()
    except urllib.error.HTTPError as error:
        return False, f"{url} answered {error.code}: {error.read().decode(errors='replace')[:200]}"
    except (OSError, ValueError) as error:
        return False, f"{url} unreachable: {error}"
    try:
        healthy = json.loads(body).get("status") == OK
    except ValueError:
        healthy = False
    return healthy, body


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when the platform at the URL (default http://127.0.0.1:8000/healthz) is healthy."""
    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args else f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
    healthy, detail = probe(url)
    print(detail)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
