"""The reconcile machinery shared by sandboxes and databases.

One reconcile run for one row:
1. ``claim`` — in a short transaction, take the row with SELECT ... FOR UPDATE SKIP LOCKED and
   write a lease (``locked_until`` = now + RECONCILE_LEASE_SECONDS, a fresh ``lease_token``).
   A row that another worker holds (row lock or unexpired lease) is skipped, not waited for.
2. the step — backend calls, outside any transaction (a slow cluster must never hold a row lock).
3. ``finish`` — one conditional UPDATE that only lands while our lease is still ours and the
   status is still the one we acted on. If the user changed the desired state meanwhile (stop
   pressed during a start), their status wins and the row is looked at again at once.

A worker killed in step 2 leaves the lease behind; ``claim`` set next_check_at to the lease's end,
so the scan picks the row up again once the lease has expired, and the idempotent step redoes
what was lost.
"""

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from fullstackagent.errors import PermanentError, RetryableError
from fullstackagent.status import ResourceStatus

logger = logging.getLogger(__name__)

# Backoff for retryable failures: 2, 4, 8 ... seconds, capped (kopf and kubespawner use the same shape).
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 60.0


@dataclass
class StepResult:
    """What one step decided: the status to record and when to look again."""

    status: str
    # Seconds until the next look; None means nothing is due until the desired state changes.
    recheck_in: float | None = None
    last_error: str = ""
    # Observed values to store on the row (runtime_state, public_url, connection_url, ...).
    fields: dict = field(default_factory=dict)


def lease_seconds() -> float:
    return float(settings.RECONCILE_LEASE_SECONDS)


def backoff_seconds(attempts: int) -> float:
    return min(BACKOFF_BASE_SECONDS * (2 ** max(attempts - 1, 0)), BACKOFF_MAX_SECONDS)


def claim(model, pk):
    """The row with a fresh lease, or None when it is gone or another worker has it."""
    now = timezone.now()
    with transaction.atomic():
        row = model.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
        if row is None:
            return None
        if row.locked_until is not None and row.locked_until > now:
            return None
        row.locked_until = now + timedelta(seconds=lease_seconds())
        row.lease_token = uuid.uuid4()
        # If this worker dies, the scan finds the row again right after the lease ends.
        row.next_check_at = row.locked_until
        model.objects.filter(pk=pk).update(
            locked_until=row.locked_until, lease_token=row.lease_token, next_check_at=row.next_check_at
        )
    return row


def finish(model, row, claimed_status: str, result: StepResult, attempts: int) -> bool:
    """Records the step's outcome; False when the row changed under us (see module docstring)."""
    now = timezone.now()
    next_check_at = None if result.recheck_in is None else now + timedelta(seconds=result.recheck_in)
    updated = model.objects.filter(pk=row.pk, lease_token=row.lease_token, status=claimed_status).update(
        status=result.status,
        last_error=result.last_error[:2000],
        next_check_at=next_check_at,
        observed_at=now,
        attempts=attempts,
        locked_until=None,
        lease_token=None,
        updated=now,
        **result.fields,
    )
    if updated:
        return True
    # The desired state changed while we worked, or our lease expired and another worker owns the
    # row now. Keep what we observed about the infrastructure (it is true whatever the status is)
    # and hand the row back for an immediate new look, but only while the lease is still ours.
    model.objects.filter(pk=row.pk, lease_token=row.lease_token).update(
        locked_until=None, lease_token=None, next_check_at=now, observed_at=now, updated=now, **result.fields
    )
    return False


def run_step(model, pk, step) -> tuple[object | None, StepResult | None, bool]:
    """Claims the row, runs ``step(row) -> StepResult`` and records the result with retries and
    error classification. Returns (row, result, landed); row is None when nothing was claimed."""
    row = claim(model, pk)
    if row is None:
        return None, None, False
    claimed_status = row.status
    attempts = 0
    try:
        result = step(row)
    except PermanentError as error:
        logger.warning("%s %s: permanent failure: %s", model.__name__, pk, error)
        result = StepResult(status=ResourceStatus.ERROR, last_error=str(error))
    except Exception as error:  # noqa: BLE001 - every other failure is retried, then given up on
        attempts = row.attempts + 1
        if not isinstance(error, RetryableError):
            logger.exception("%s %s: unexpected failure in step %s", model.__name__, pk, claimed_status)
        message = str(error) or error.__class__.__name__
        if attempts >= settings.RECONCILE_MAX_RETRIES:
            result = StepResult(
                status=ResourceStatus.ERROR,
                last_error=f"{message} (gave up after {attempts} attempts; start the project to try again)",
            )
        else:
            result = StepResult(
                status=claimed_status,
                recheck_in=backoff_seconds(attempts),
                last_error=f"{message} (retrying, attempt {attempts})",
            )
    landed = finish(model, row, claimed_status, result, attempts)
    return row, result, landed


def claim_due_ids(model, limit: int | None = None) -> list[int]:
    """The ids the beat should queue now, pushed one lease ahead so the next tick does not queue
    them again while their task waits in the broker. One statement, whatever the table size: the
    partial index `<model>_due_idx` holds only rows with work."""
    table = model._meta.db_table
    now = timezone.now()
    sql = f"""
        UPDATE {table} SET next_check_at = %s
        WHERE id IN (
            SELECT id FROM {table}
            WHERE next_check_at IS NOT NULL AND next_check_at <= %s
              AND (locked_until IS NULL OR locked_until < %s)
            ORDER BY next_check_at
            LIMIT %s
            FOR UPDATE SKIP LOCKED
        )
        RETURNING id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [now + timedelta(seconds=lease_seconds()), now, now, limit or settings.RECONCILE_SCAN_BATCH])
        return [row[0] for row in cursor.fetchall()]


def mark_due(queryset) -> int:
    """Asks for a look as soon as possible (used by services after a desired-state change)."""
    return queryset.update(next_check_at=timezone.now(), updated=timezone.now())


def not_leased(now=None) -> Q:
    now = now or timezone.now()
    return Q(locked_until__isnull=True) | Q(locked_until__lt=now)
