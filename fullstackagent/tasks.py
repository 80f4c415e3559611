import logging
import time

from celery import shared_task
from django.core.cache import cache

from databases.models import Database
from databases.tasks import reconcile_database
from fullstackagent.reconcile import claim_due_ids
from sandboxes.models import Sandbox
from sandboxes.tasks import reconcile_sandbox

logger = logging.getLogger(__name__)

# When a scan last ran (epoch seconds, in the cache): /healthz reports the scheduler stale when it
# is old (fullstackagent.health). Any beat's scan refreshes it, so two beats keep it fresh too.
SCHEDULER_HEARTBEAT_KEY = "fullstackagent:scheduler:last-scan"


def queue_each(sandbox_ids, database_ids) -> None:
    """One reconcile task per resource, so workers step them in parallel."""
    for database_id in database_ids:
        reconcile_database.delay(database_id)
    for sandbox_id in sandbox_ids:
        reconcile_sandbox.delay(sandbox_id)


@shared_task(name="fullstackagent.tasks.reconcile_resources", ignore_result=True)
def reconcile_resources(sandbox_ids: list[int], database_ids: list[int]) -> None:
    """What a service sends after a change (projects.services.queue_after_commit): one message for
    all the resources it touched, fanned out here, so the request that made the change pays for
    one publish instead of one per resource (about 0.5 ms each)."""
    queue_each(sandbox_ids, database_ids)


@shared_task(name="fullstackagent.tasks.scan_resources", ignore_result=True)
def scan_resources() -> int:
    """The beat's safety net: queue one reconcile task per due row (two statements per tick).

    Safe with two beats (or a beat per worker): claim_due_ids takes rows with FOR UPDATE SKIP
    LOCKED and pushes them a lease ahead in the same statement, so a row is queued by one scan only;
    a second scan in the same tick finds nothing due."""
    try:
        cache.set(SCHEDULER_HEARTBEAT_KEY, time.time(), timeout=None)
    except Exception:  # noqa: BLE001 - the heartbeat is for monitoring; the scan still runs
        logger.warning("could not record the scheduler heartbeat", exc_info=True)
    database_ids = claim_due_ids(Database)
    sandbox_ids = claim_due_ids(Sandbox)
    queue_each(sandbox_ids, database_ids)
    return len(database_ids) + len(sandbox_ids)
