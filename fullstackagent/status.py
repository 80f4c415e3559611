"""Lifecycle states shared by sandboxes, databases and projects."""

from django.db import models


class ResourceStatus(models.TextChoices):
    """Status of one sandbox or database. Transitional states double as the desired state."""

    CREATING = "CREATING", "Creating"
    STARTING = "STARTING", "Starting"
    RUNNING = "RUNNING", "Running"
    UPDATING = "UPDATING", "Updating"
    STOPPING = "STOPPING", "Stopping"
    STOPPED = "STOPPED", "Stopped"
    TERMINATING = "TERMINATING", "Terminating"
    TERMINATED = "TERMINATED", "Terminated"
    ERROR = "ERROR", "Error"

    @classmethod
    def transitional(cls) -> frozenset:
        """States a reconciler still has to act on."""
        return frozenset({cls.CREATING, cls.STARTING, cls.UPDATING, cls.STOPPING, cls.TERMINATING})


class ProjectStatus(models.TextChoices):
    """Status of a project, aggregated from its resources (see aggregate_status)."""

    CREATING = "CREATING", "Creating"
    STARTING = "STARTING", "Starting"
    RUNNING = "RUNNING", "Running"
    UPDATING = "UPDATING", "Updating"
    STOPPING = "STOPPING", "Stopping"
    STOPPED = "STOPPED", "Stopped"
    TERMINATING = "TERMINATING", "Terminating"
    TERMINATED = "TERMINATED", "Terminated"
    ERROR = "ERROR", "Error"
    PARTIAL = "PARTIAL", "Partial"


def aggregate_status(resource_statuses: list[str]) -> str:
    """The project status for the given resource statuses, in this order: ERROR if any is in
    ERROR; CREATING if any is CREATING; the common status when all are equal; STARTING when all are
    RUNNING or STARTING, STOPPING when all are STOPPED or STOPPING, TERMINATING when all are
    TERMINATED or TERMINATING; PARTIAL otherwise.

    UPDATING ranks right after CREATING, as in the original system.
    """
    statuses = set(resource_statuses)
    if not statuses:
        return ProjectStatus.TERMINATED
    if ResourceStatus.ERROR in statuses:
        return ProjectStatus.ERROR
    if ResourceStatus.CREATING in statuses:
        return ProjectStatus.CREATING
    if ResourceStatus.UPDATING in statuses:
        return ProjectStatus.UPDATING
    if len(statuses) == 1:
        return ProjectStatus(statuses.pop())
    if statuses <= {ResourceStatus.RUNNING, ResourceStatus.STARTING}:
        return ProjectStatus.STARTING
    if statuses <= {ResourceStatus.STOPPED, ResourceStatus.STOPPING}:
        return ProjectStatus.STOPPING
    if statuses <= {ResourceStatus.TERMINATED, ResourceStatus.TERMINATING}:
        return ProjectStatus.TERMINATING
    return ProjectStatus.PARTIAL


class TransitionCause(models.TextChoices):
    """Who or what moved a resource from one status to another (recorded with each transition)."""

    USER = "user", "User action"
    RECONCILE = "reconcile", "Reconcile"
    DRIFT = "drift", "Drift"
    DEADLINE = "deadline", "Deadline"
    # The platform stopped a sandbox nobody and nothing used for the user's IDLE_STOP_MINUTES
    # (projects.services.do_stop_idle_project); /metrics counts these events.
    IDLE = "idle", "Idle"
