"""The abstract model every reconciled resource (sandbox, database) shares."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from fullstackagent.status import ResourceStatus


class ReconciledResource(models.Model):
    """Columns the reconcile engine reads and writes (see fullstackagent.reconcile)."""

    status = models.CharField(max_length=16, choices=ResourceStatus.choices, default=ResourceStatus.CREATING)
    # When the scan should next queue this row; NULL means "nothing to do until something changes".
    next_check_at = models.DateTimeField(null=True, blank=True)
    # The lease: a worker owns the row until locked_until, proven by lease_token.
    locked_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True)
    # Consecutive retryable failures, for the backoff; reset by every successful step.
    attempts = models.PositiveIntegerField(default=0)
    # When the row entered its current status: transitional states have a progress deadline
    # (RECONCILE_PROGRESS_DEADLINE_SECONDS) counted from here.
    status_changed_at = models.DateTimeField(default=timezone.now)
    # Drift restarts in a row (a crash loop) and when the last one was decided: the next restart
    # waits 10, 20, 40 ... s, and too many end in ERROR. The user's start, stop or delete resets it.
    restarts = models.PositiveIntegerField(default=0)
    last_restart_at = models.DateTimeField(null=True, blank=True)
    observed_at = models.DateTimeField(null=True, blank=True)
    # What the backend needs to find its infrastructure again (pids, ports, generations).
    runtime_state = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        indexes = [
            # The beat's scan (fullstackagent.reconcile.due_ids): only rows with work are indexed, so a
            # tick costs the same with ten thousand steady projects as with none.
            models.Index(
                fields=["next_check_at"],
                condition=Q(next_check_at__isnull=False),
                name="%(class)s_due_idx",
            ),
        ]
