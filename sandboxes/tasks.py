from celery import shared_task
from django.conf import settings

from fullstackagent.reconcile import run_step
from fullstackagent.requeue import publish_later
from fullstackagent.status import ResourceStatus
from sandboxes import idle, reconcile, terminal
from sandboxes.models import Sandbox


@shared_task(name="sandboxes.tasks.reconcile_sandbox", ignore_result=True)
def reconcile_sandbox(sandbox_id: int) -> None:
    """One step for one sandbox; safe to run twice, concurrently, or after a crash."""
    from projects.services import refresh_project_status

    row, result, landed = run_step(Sandbox, sandbox_id, reconcile.step)
    if row is None:
        return
    refresh_project_status(row.project_id)
    if landed and result.status == ResourceStatus.RUNNING and idle.stop_due(sandbox_id):
        from projects.services import do_stop_idle_project

        if do_stop_idle_project(sandbox_id):
            return  # its stop is queued after commit
    if not landed:
        publish_later(reconcile_sandbox, (sandbox_id,), 0.05)
    elif result.recheck_in is not None and result.recheck_in <= settings.RECONCILE_INTERVAL_SECONDS:
        # Short waits (a process booting) are not left to the next beat tick.
        publish_later(reconcile_sandbox, (sandbox_id,), result.recheck_in)


@shared_task(name="sandboxes.tasks.remove_stale_uploads", ignore_result=True)
def remove_stale_uploads() -> int:
    """Removes terminal uploads nobody continued for TERMINAL_UPLOAD_STALE_SECONDS (on the beat)."""
    return terminal.remove_stale_uploads()
