"""Signs that a sandbox is in use: terminal and preview traffic, the agent working.

Callers on hot paths (every frame of the terminal relay, every preview request) call
``note_activity`` or ``anote_activity`` freely: a process writes a sandbox's ``last_activity_at`` at
most once per ``write_interval()`` (30 s), and the UPDATE itself writes only when the stored value is
that old, so many web processes relaying the same busy terminal cost about one row write per
interval together. The idle check (sandboxes.idle) stops a sandbox unused for IDLE_STOP_MINUTES,
so a value up to 30 s old is precise enough.
"""

import threading
import time
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from sandboxes.models import Sandbox

WRITE_INTERVAL_SECONDS = 30.0

# sandbox id → time.monotonic() of this process's last write. Bounded by the number of sandboxes
# this process relayed for (an int and a float each).
_last_written: dict[int, float] = {}
_lock = threading.Lock()


def write_interval() -> float:
    """30 s, or a quarter of the idle limit when that is shorter (a test's few seconds), so
    activity is never recorded too late to count."""
    limit_seconds = float(settings.IDLE_STOP_MINUTES) * 60
    if limit_seconds <= 0:
        return WRITE_INTERVAL_SECONDS
    return min(WRITE_INTERVAL_SECONDS, limit_seconds / 4)


def _due(sandbox_id: int) -> bool:
    """Whether this process should write now; claims the write, so of many frames at once one does."""
    now = time.monotonic()
    with _lock:
        last = _last_written.get(sandbox_id)
        if last is not None and now - last < write_interval():
            return False
        _last_written[sandbox_id] = now
        return True


def record_activity(sandbox_id: int) -> int:
    """Writes now as the sandbox's last activity unless a write within the interval is already
    stored (another process's); returns the rows written (0 or 1)."""
    now = timezone.now()
    stale = Q(last_activity_at__isnull=True) | Q(last_activity_at__lt=now - timedelta(seconds=write_interval()))
    # A bare UPDATE: no `updated` bump (the row did not change in a way anyone edits), no lock held
    # beyond the statement.
    return Sandbox.objects.filter(stale, pk=sandbox_id).update(last_activity_at=now)


def note_activity(sandbox_id: int) -> None:
    """The sandbox was used just now (cheap: usually no query at all)."""
    if _due(sandbox_id):
        record_activity(sandbox_id)


async def anote_activity(sandbox_id: int) -> None:
    """``note_activity`` for async code: the thread hop to the database happens only when a write
    is due, so a relay pays it once per interval, not per frame."""
    if _due(sandbox_id):
        await database_sync_to_async(record_activity)(sandbox_id)
