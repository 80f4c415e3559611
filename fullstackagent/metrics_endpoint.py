"""``/metrics``: every process's samples (fullstackagent.metrics) and the state read from the
database (settings.METRICS_COLLECTORS), in Prometheus's text format, for operators only.

A scrape is let in with ``Authorization: Bearer <METRICS_TOKEN>`` (compared in constant time), or
without a credential when it comes straight from METRICS_ALLOWED_NETWORKS (loopback while DEBUG,
none by default in production). A request that passed a reverse proxy (X-Forwarded-For or
Forwarded) never counts as coming from a network: behind a proxy on the same host, every visitor
would otherwise be 127.0.0.1. Refused scrapes get 401 (403 when no token is set) and no series.
The view needs no sign-in, so the site's redirects to the sign-in page never reach it.
"""

import hmac
import ipaddress
from functools import cache

from django.conf import settings
from django.http import HttpResponse
from django.urls import path
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder

from fullstackagent import metrics


@cache
def _collectors() -> tuple:
    return tuple(import_string(name)() for name in settings.METRICS_COLLECTORS)


def _token_matches(header: str) -> bool:
    scheme, _, credential = header.partition(" ")
    token = settings.METRICS_TOKEN
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), token.encode())


def _from_allowed_network(request) -> bool:
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 on a dual-stack socket
    return any(address in ipaddress.ip_network(network, strict=False) for network in settings.METRICS_ALLOWED_NETWORKS)


def scrape_allowed(request) -> bool:
    header = request.headers.get("Authorization")
    if header is not None:
        # A credential that is wrong is refused even from an allowed network: a scraper
        # configured with a stale token should hear so, not pass by accident.
        return _token_matches(header)
    return _from_allowed_network(request)


def _refusal() -> HttpResponse:
    if settings.METRICS_TOKEN:
        response = HttpResponse("Metrics need Authorization: Bearer <METRICS_TOKEN>.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse("Metrics are open to METRICS_ALLOWED_NETWORKS only.\n", status=403, content_type="text/plain")


def registry() -> CollectorRegistry:
    folder = metrics.directory()
    if folder is None:  # no shared folder (fullstackagent.metrics._use_files): this process only
        scraped = CollectorRegistry()
        scraped.register(REGISTRY)
    else:
        metrics.remove_dead_live_gauges(folder)
        scraped = CollectorRegistry()
        multiprocess.MultiProcessCollector(scraped, path=str(folder))
    for collector in _collectors():
        scraped.register(collector)
    return scraped


@never_cache
@require_GET
def metrics_view(request):
    if not scrape_allowed(request):
        return _refusal()
    # The format the scraper asks for (Prometheus 2's text format 0.0.4 unless it says otherwise).
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry()), content_type=content_type)


urlpatterns = [path("metrics", metrics_view, name="metrics")]
