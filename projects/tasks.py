"""The platform's Celery tasks: the orchestrator steps sandboxes and databases, keeps each project's
status in step with them, and carries out what one resource's step means for the others (a new
database URL re-applies the sandbox's environment; an idle sandbox stops its whole project).

The steps themselves (sandboxes.reconcile, databases.reconcile) know nothing of projects beyond the
rows they are given; they live below this app and never call back up into it.
"""

import logging
import time

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from databases import reconcile as database_reconcile
from databases.models import Database
from fullstackagent.health import SCHEDULER_HEARTBEAT_KEY
from fullstackagent.reconcile import claim_due_ids, run_step
from fullstackagent.requeue import publish_later
from fullstackagent.status import ResourceStatus
from projects.services import (
    do_stop_idle_project, environment_changed_for_projects, refresh_project_status, refresh_stale_project_statuses,
)
from sandboxes import idle, terminal
from sandboxes import reconcile as sandbox_reconcile
from sandboxes.models import Sandbox

logger = logging.getLogger(__name__)


@shared_task(name="projects.tasks.reconcile_sandbox", ignore_result=True)
def reconcile_sandbox(sandbox_id: int) -> None:
    """One step for one sandbox; safe to run twice, concurrently, or after a crash."""
    row, result, landed = run_step(Sandbox, sandbox_id, sandbox_reconcile.step)
    if row is None:
        return
    refresh_project_status(row.project_id)
    if landed and result.status == ResourceStatus.RUNNING and idle.stop_due(sandbox_id):
        if do_stop_idle_project(sandbox_id):
            return  # its stop is queued after commit
    if not landed:
        publish_later(reconcile_sandbox, (sandbox_id,), 0.05)
    elif result.recheck_in is not None and result.recheck_in <= settings.RECONCILE_INTERVAL_SECONDS:
        # Short waits (a process booting) are not left to the next beat tick.
        publish_later(reconcile_sandbox, (sandbox_id,), result.recheck_in)


@shared_task(name="projects.tasks.reconcile_database", ignore_result=True)
def reconcile_database(database_id: int) -> None:
    """One step for one database; like reconcile_sandbox."""
    before = Database.objects.filter(pk=database_id).values_list("connection_url", flat=True).first()
    row, result, landed = run_step(Database, database_id, database_reconcile.step)
    if row is None:
        return
    refresh_project_status(row.project_id)
    if result.fields.get("connection_url", before) != before:
        # The sandbox's DATABASE_URL changed: re-apply its environment (or let it start now).
        environment_changed_for_projects([row.project_id])
    if not landed:
        publish_later(reconcile_database, (database_id,), 0.05)
    elif result.recheck_in is not None and result.recheck_in <= settings.RECONCILE_INTERVAL_SECONDS:
        publish_later(reconcile_database, (database_id,), result.recheck_in)


def queue_each(sandbox_ids, database_ids) -> None:
    """One reconcile task per resource, so workers step them in parallel."""
    for database_id in database_ids:
        reconcile_database.delay(database_id)
    for sandbox_id in sandbox_ids:
        reconcile_sandbox.delay(sandbox_id)


@shared_task(name="projects.tasks.reconcile_resources", ignore_result=True)
def reconcile_resources(sandbox_ids: list[int], database_ids: list[int]) -> None:
    """What a service sends after a change (projects.services.queue_after_commit): one message for
    all the resources it touched, fanned out here, so the request that made the change pays for
    one publish instead of one per resource (about 0.5 ms each)."""
    queue_each(sandbox_ids, database_ids)


@shared_task(name="projects.tasks.scan_resources", ignore_result=True)
def scan_resources() -> int:
    """The beat's safety net: queue one reconcile task per due row, and refresh projects whose last
    refresh was lost (three statements per tick).

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
    refresh_stale_project_statuses()  # a refresh lost with a killed worker or an outage
    return len(database_ids) + len(sandbox_ids)


@shared_task(name="projects.tasks.remove_stale_uploads", ignore_result=True)
def remove_stale_uploads() -> int:
    """Removes terminal uploads nobody continued for TERMINAL_UPLOAD_STALE_SECONDS (on the beat)."""
    return terminal.remove_stale_uploads()
