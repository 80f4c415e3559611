"""Idle stop: a RUNNING sandbox nobody and nothing used for its owner's IDLE_STOP_MINUTES is stopped.

Use is terminal input and output through the relay and preview traffic (both recorded by
sandboxes.activity), and the sandbox's own processes working, which the reconcile step's drift
check asks the backend about (``look_for_work``): a long agent task goes on with no browser open.
The clock starts again when the sandbox becomes RUNNING. The stop itself is the project's, like
the user's Stop, so the database stops too (projects.services.do_stop_idle_project).
"""

from datetime import datetime, timedelta

from django.utils import timezone

from fullstackagent.status import ResourceStatus
from identities.models import UserQuota
from sandboxes.backends.base import SandboxSpec
from sandboxes.models import Sandbox


def limit_minutes(user_id: int) -> float:
    """The user's idle limit in minutes (their own setting, else IDLE_STOP_MINUTES); 0: never."""
    return float(UserQuota.limits_for(user_id)["idle_stop_minutes"])


def describe(minutes: float) -> str:
    """``60 min`` as users set it; seconds for the fractions only tests use."""
    if minutes >= 1 and float(minutes).is_integer():
        return f"{int(minutes)} min"
    return f"{minutes * 60:.0f} s"


def reason(minutes: float) -> str:
    """What the project card and the history say about an idle stop."""
    return f"Stopped: idle for {describe(minutes)}. Opening its terminal starts it again."


def idle_since(sandbox: Sandbox) -> datetime:
    """The last sign of use, or when it became RUNNING if that is later."""
    if sandbox.last_activity_at is None:
        return sandbox.status_changed_at
    return max(sandbox.last_activity_at, sandbox.status_changed_at)


def is_due(sandbox: Sandbox, minutes: float, now: datetime | None = None) -> bool:
    if sandbox.status != ResourceStatus.RUNNING or minutes <= 0:
        return False
    return (now or timezone.now()) - idle_since(sandbox) >= timedelta(minutes=minutes)


def look_for_work(sandbox: Sandbox, backend, spec: SandboxSpec) -> dict:
    """Fields for the drift check to store: ``last_activity_at`` when the sandbox's processes are
    working (backend.busy). Nothing is looked at for a user whose sandboxes never stop."""
    if limit_minutes(sandbox.project.user_id) <= 0:
        return {}
    if backend.busy(spec):
        return {"last_activity_at": timezone.now()}
    return {}


def stop_due(sandbox_id: int) -> bool:
    """Cheap pre-check after a drift check: whether do_stop_idle_project has work (it checks again
    under its locks)."""
    sandbox = Sandbox.objects.select_related("project").filter(pk=sandbox_id).first()
    if sandbox is None or sandbox.status != ResourceStatus.RUNNING:
        return False
    return is_due(sandbox, limit_minutes(sandbox.project.user_id))
