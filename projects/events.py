"""The history of a project's resources: one ResourceEvent per status transition.

The reconcile engine (fullstackagent.reconcile) announces the transitions its steps make with the
``resource_transitioned`` signal, inside the transaction that writes them; the services here record
the ones users cause. The core never imports projects: this receiver is the one way up.
"""

from django.dispatch import receiver

from fullstackagent.inserts import NewId
from fullstackagent.reconcile import resource_transitioned
from fullstackagent.status import TransitionCause
from projects.models import ResourceEvent, ResourceKind

# A reason longer than this is cut: last_error is at most 2000 characters already.
MAX_REASON_CHARACTERS = 2000


def record_transition(resource, from_status: str, to_status: str, *, reason: str = "", cause: str) -> None:
    """One event for a sandbox's or database's status change (call inside the changing transaction)."""
    record_transitions([resource], from_status, to_status, reason=reason, cause=cause)


def record_transitions(resources, from_status: str, to_status: str, *, reason: str = "", cause: str) -> None:
    """The same change of several resources, in one INSERT."""
    ResourceEvent.objects.bulk_create(transition_events(resources, from_status, to_status, reason=reason, cause=cause))


def transition_events(resources, from_status: str, to_status: str, *, reason: str = "", cause: str) -> list[ResourceEvent]:
    """The events (unsaved) for the same change of several resources. A resource not saved yet (a new
    project's sandbox and database) is referred to by the id it gets when inserted with its events
    (fullstackagent.inserts)."""
    if from_status == to_status:
        return []
    return [
        ResourceEvent(
            # The id when the resource has it (no query for the project); the new project itself otherwise.
            **({"project_id": resource.project_id} if resource.project_id is not None else {"project": resource.project}),
            resource_kind=ResourceKind(type(resource)._meta.model_name),
            resource_id=resource.pk if resource.pk is not None else NewId(resource),
            resource_name=resource.name,
            from_status=from_status,
            to_status=to_status,
            reason=(reason or "")[:MAX_REASON_CHARACTERS],
            cause=cause,
        )
        for resource in resources
    ]


def record_user_transitions(resources, to_status: str) -> None:
    for resource in resources:
        record_transition(resource, resource.status, to_status, cause=TransitionCause.USER)


@receiver(resource_transitioned, dispatch_uid="projects.events.reconcile_transition")
def reconcile_transition(sender, resource, from_status, to_status, reason, cause, **kwargs):
    record_transition(resource, from_status, to_status, reason=reason, cause=cause)
