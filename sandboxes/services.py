"""Sandbox-side services: the environment a sandbox should have, and reacting to its changes."""

from django.db import transaction
from django.utils import timezone

from fullstackagent.reconcile import resource_transitioned
from fullstackagent.status import ResourceStatus, TransitionCause
from sandboxes.models import Sandbox


def environment_changed_for_projects(project_ids) -> None:
    """A variable, the database URL or a user setting changed: running sandboxes of these projects
    go to UPDATING (the reconciler re-applies the environment, or returns to RUNNING at once when
    the effective environment did not change); others just get looked at."""
    with transaction.atomic():
        _environment_changed(project_ids)


def _environment_changed(project_ids) -> None:
    from projects.models import Project

    # Projects first, then their sandboxes: the order the project services and
    # refresh_project_status lock in, so a variable saved during a stop cannot deadlock with it.
    list(Project.objects.select_for_update().filter(pk__in=project_ids).order_by("pk").values_list("pk", flat=True))
    now = timezone.now()
    running = Sandbox.objects.filter(project_id__in=project_ids, status=ResourceStatus.RUNNING)
    updating = list(running.select_for_update())
    updating_ids = [sandbox.pk for sandbox in updating]
    running.update(status=ResourceStatus.UPDATING, status_changed_at=now, next_check_at=now, updated=now)
    for sandbox in updating:
        resource_transitioned.send(
            sender=Sandbox,
            resource=sandbox,
            from_status=ResourceStatus.RUNNING,
            to_status=ResourceStatus.UPDATING,
            reason="The environment changed.",
            cause=TransitionCause.USER,
        )
    others = Sandbox.objects.filter(project_id__in=project_ids).exclude(
        status__in=[ResourceStatus.TERMINATED, ResourceStatus.ERROR, ResourceStatus.STOPPED]
    ).exclude(pk__in=updating_ids)
    other_ids = list(others.values_list("pk", flat=True))
    others.update(next_check_at=now)
    from projects.services import queue_after_commit, refresh_project_status

    if updating_ids:
        for project_id in set(Sandbox.objects.filter(pk__in=updating_ids).values_list("project_id", flat=True)):
            refresh_project_status(project_id)
    queue_after_commit(sandbox_ids=updating_ids + other_ids)


def environment_changed_for_user(user_id: int) -> None:
    from projects.models import Project

    project_ids = list(Project.objects.filter(user_id=user_id).visible().values_list("pk", flat=True))
    if project_ids:
        environment_changed_for_projects(project_ids)
