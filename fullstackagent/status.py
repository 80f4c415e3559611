"""Lifecycle states shared by sandboxes, databases and projects (DESIGN.md "Lifecycle")."""

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

    @classmethod
    def steady(cls) -> frozenset:
        return frozenset({cls.RUNNING, cls.STOPPED, cls.TERMINATED, cls.ERROR})


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


# Colours the UI gives each status (badge classes in static/css/app.css).
STATUS_COLOURS = {
    "CREATING": "blue",
    "STARTING": "blue",
    "UPDATING": "blue",
    "RUNNING": "green",
    "STOPPING": "amber",
    "STOPPED": "grey",
    "TERMINATING": "amber",
    "TERMINATED": "grey",
    "ERROR": "red",
    "PARTIAL": "amber",
}


def aggregate_status(resource_statuses: list[str]) -> str:
    """The project status for the given resource statuses, in DESIGN.md's order of rules.

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
