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
what was lost. While a step runs, a heartbeat thread renews the lease every third of its length,
so the lease can be short (a dead worker's rows come back within seconds) and a slow step (13
Kubernetes calls of up to 10 s each) still never has its row taken by a second worker.

Every status change a step makes is announced with ``resource_transitioned`` inside the
transaction that writes it (projects records it as an event; the core does not import projects).
A step that changes nothing writes nothing but its lease release and next check: ``last_error``,
the status and ``updated`` stay as they were, so an ERROR's reason or a drift note survive a
duplicate message or a steady drift check.
"""

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from fullstackagent import metrics
from fullstackagent.backends import PermanentError, RetryableError
from fullstackagent.status import ResourceStatus, TransitionCause

logger = logging.getLogger(__name__)

# Backoff for retryable failures: 2, 4, 8 ... seconds, capped (kopf and kubespawner use the same shape).
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 60.0
# Crash-loop backoff, the kubelet's: the first drift restart at once, then 10, 20, 40 ... s, capped
# at five minutes; a restart more than RECONCILE_CRASH_LOOP_RESET_SECONDS after the previous one
# starts counting again (the resource ran fine in between).
CRASH_LOOP_BACKOFF_BASE_SECONDS = 10.0
CRASH_LOOP_BACKOFF_MAX_SECONDS = 300.0

# Sent inside the transaction that changes a resource's status: sender is the model, with
# resource (the row), from_status, to_status, reason and cause (a TransitionCause).
resource_transitioned = Signal()


@dataclass
class StepResult:
    """What one step decided: the status to record and when to look again."""

    status: str
    # Seconds until the next look; None means nothing is due until the desired state changes.
    recheck_in: float | None = None
    # None leaves the row's last_error as it is (cleared only when the step ends a run of
    # retried failures: the failure it describes is over).
    last_error: str | None = None
    # Observed values to store on the row (runtime_state, public_url, connection_url, ...).
    fields: dict = field(default_factory=dict)
    cause: str = TransitionCause.RECONCILE
    # A drift restart sets the crash-loop count (see drift_restart).
    restarts: int | None = None


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


class LeaseHeartbeat:
    """Renews a claimed row's lease every third of RECONCILE_LEASE_SECONDS while a step runs, from a
    thread of its own (the step blocks in backend calls). It stops renewing as soon as the lease is
    no longer ours, and when the step ends; a killed worker renews nothing, so its lease runs out."""

    def __init__(self, model, row):
        self.model, self.pk, self.token = model, row.pk, row.lease_token
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{model.__name__}-{row.pk}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stopped.set()
        self._thread.join()

    def _run(self):
        try:
            while not self._stopped.wait(lease_seconds() / 3):
                until = timezone.now() + timedelta(seconds=lease_seconds())
                renewed = self.model.objects.filter(pk=self.pk, lease_token=self.token).update(
                    locked_until=until, next_check_at=until
                )
                if not renewed:
                    return
        except Exception:  # noqa: BLE001 - a failed renewal only shortens the lease; the step goes on
            logger.warning("%s %s: lease renewal failed", self.model.__name__, self.pk, exc_info=True)
        finally:
            # This thread's own connection (Django keeps one per thread) goes back to the pool.
            connections.close_all()


def crash_loop_delay(restarts: int) -> float:
    """Seconds the ``restarts``-th drift restart in a row waits: 0, 10, 20, 40 ... capped."""
    if restarts <= 1:
        return 0.0
    return min(CRASH_LOOP_BACKOFF_BASE_SECONDS * 2 ** (restarts - 2), CRASH_LOOP_BACKOFF_MAX_SECONDS)


def drift_restart(row, message: str, fields: dict) -> StepResult:
    """A resource that should run was found otherwise: restart it through STARTING, after the
    crash-loop delay, or give up with ERROR once it has been restarted too often in a row."""
    now = timezone.now()
    in_a_row = row.last_restart_at is not None and (now - row.last_restart_at).total_seconds() < float(
        settings.RECONCILE_CRASH_LOOP_RESET_SECONDS
    )
    restarts = row.restarts + 1 if in_a_row else 1
    if restarts > settings.RECONCILE_CRASH_LOOP_LIMIT:
        return StepResult(
            ResourceStatus.ERROR,
            last_error=f"{message} it was restarted {row.restarts} times in a row and keeps failing "
            "(crash loop); start the project to try again.",
            fields=fields,
            cause=TransitionCause.DRIFT,
        )
    delay = crash_loop_delay(restarts)
    when = "now" if not delay else f"in {delay:.0f} s"
    return StepResult(
        ResourceStatus.STARTING,
        recheck_in=delay,
        last_error=f"{message} restarting it {when} (restart {restarts} in a row).",
        fields=fields,
        cause=TransitionCause.DRIFT,
        restarts=restarts,
    )


def restart_wait(row) -> float:
    """Seconds a drift restart still has to wait (0 when it may start)."""
    if not row.restarts or row.last_restart_at is None:
        return 0.0
    due = row.last_restart_at + timedelta(seconds=crash_loop_delay(row.restarts))
    return max((due - timezone.now()).total_seconds(), 0.0)


def past_deadline(row) -> StepResult | None:
    """ERROR for a row that has been in a transitional status longer than the progress deadline
    (a pod stuck Pending, a cluster that never becomes ready): the user gets a reason and can start
    or stop again, instead of a status that never moves."""
    if row.status not in ResourceStatus.transitional() or row.status_changed_at is None:
        return None
    deadline = float(settings.RECONCILE_PROGRESS_DEADLINE_SECONDS)
    if (timezone.now() - row.status_changed_at).total_seconds() <= deadline:
        return None
    return StepResult(
        ResourceStatus.ERROR,
        last_error=f"Still {row.status} after {deadline:.0f} s (the progress deadline); "
        "start, stop or delete the project to try again.",
        cause=TransitionCause.DEADLINE,
    )


def finish(model, row, claimed_status: str, result: StepResult, attempts: int) -> bool:
    """Records the step's outcome; False when the row changed under us (see module docstring)."""
    now = timezone.now()
    next_check_at = None if result.recheck_in is None else now + timedelta(seconds=result.recheck_in)
    transition = result.status != claimed_status
    changes = dict(next_check_at=next_check_at, observed_at=now, attempts=attempts, locked_until=None, lease_token=None)
    if transition:
        changes.update(status=result.status, status_changed_at=now, updated=now)
    if result.last_error is not None:
        changes["last_error"] = result.last_error[:2000]
    elif row.attempts:
        changes["last_error"] = ""
    if "last_error" in changes and changes["last_error"] != row.last_error:
        changes["updated"] = now
    if result.restarts is not None:
        changes.update(restarts=result.restarts, last_restart_at=now)
    with transaction.atomic():
        updated = model.objects.filter(pk=row.pk, lease_token=row.lease_token, status=claimed_status).update(
            **changes, **result.fields
        )
        if updated and transition:
            # What an operator watching `make run` wants to read: transitions, not every steady check.
            logger.info(
                "%s %s: %s -> %s%s", model._meta.model_name, row.name, claimed_status, result.status,
                f" ({changes['last_error']})" if changes.get("last_error") else "",
            )
            resource_transitioned.send(
                sender=model,
                resource=row,
                from_status=claimed_status,
                to_status=result.status,
                reason=changes.get("last_error", row.last_error),
                cause=result.cause,
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
    started = time.perf_counter()
    row = claim(model, pk)
    if row is None:
        return None, None, False
    claimed_status = row.status
    attempts = 0
    try:
        result = past_deadline(row)
        if result is None:
            with LeaseHeartbeat(model, row):
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
    metrics.record_reconcile_step(
        model._meta.model_name, claimed_status, step_outcome(result, attempts, landed), time.perf_counter() - started
    )
    return row, result, landed


def step_outcome(result: StepResult, attempts: int, landed: bool) -> str:
    """The ``result`` label of fullstackagent_reconcile_steps_total."""
    if not landed:
        return "superseded"  # a user's change or a lost lease: the step's status was not written
    if result.status == ResourceStatus.ERROR:
        return "error"  # a permanent failure, retries used up, a deadline or a crash loop
    return "retry" if attempts else "ok"


def claim_due_ids(model, limit: int | None = None) -> list[int]:
    """The ids the beat should queue now, pushed one lease ahead so the next tick does not queue
    them again while their task waits in the broker. One statement, whatever the table size: the
    partial index `<model>_due_idx` holds only rows with work.

    The batch is a MATERIALIZED CTE, evaluated once. Written as ``WHERE id IN (SELECT … LIMIT …
    FOR UPDATE SKIP LOCKED)`` the planner may choose a nested-loop semi join that runs the subquery
    again for each row it scans; every run skips the rows the UPDATE has just changed and locks the
    next ones, so one claim took every due row, past its limit, and left none for a second scan."""
    table = model._meta.db_table
    now = timezone.now()
    sql = f"""
        WITH batch AS MATERIALIZED (
            SELECT id FROM {table}
            WHERE next_check_at IS NOT NULL AND next_check_at <= %s
              AND (locked_until IS NULL OR locked_until < %s)
            ORDER BY next_check_at
            LIMIT %s
            FOR UPDATE SKIP LOCKED
        )
        UPDATE {table} SET next_check_at = %s
        FROM batch WHERE {table}.id = batch.id
        RETURNING {table}.id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, now, limit or settings.RECONCILE_SCAN_BATCH, now + timedelta(seconds=lease_seconds())])
        return [row[0] for row in cursor.fetchall()]


def mark_due(queryset) -> int:
    """Asks for a look as soon as possible (used by services after a desired-state change)."""
    return queryset.update(next_check_at=timezone.now(), updated=timezone.now())


def not_leased(now=None) -> Q:
    now = now or timezone.now()
    return Q(locked_until__isnull=True) | Q(locked_until__lt=now)
