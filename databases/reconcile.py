"""One reconcile step for a database."""

from django.conf import settings

from databases.backends import get_database_backend
from databases.backends.base import DatabaseObservation, DatabasePhase, DatabaseSpec
from databases.models import Database
from fullstackagent.backends import Owner
from fullstackagent.reconcile import StepResult, drift_restart, restart_wait
from fullstackagent.status import ResourceStatus
from identities.models import ConfigKey, UserConfig


def build_spec(database: Database) -> DatabaseSpec:
    project = database.project
    kubeconfig = (
        UserConfig.objects.filter(user_id=project.user_id, key=ConfigKey.KUBECONFIG).values_list("value", flat=True).first()
    )
    return DatabaseSpec(
        database_id=database.pk,
        name=database.name,
        project_id=project.pk,
        project_k8s_name=project.k8s_name,
        namespace=database.k8s_namespace,
        owner=Owner(user_id=project.user_id, kubeconfig=kubeconfig or None),
        runtime_state=dict(database.runtime_state or {}),
        connection_url=database.connection_url or "",
    )


def _fields(observation: DatabaseObservation) -> dict:
    fields = {"runtime_state": observation.runtime_state}
    if observation.connection_url:
        fields["connection_url"] = observation.connection_url
    if observation.namespace:
        fields["k8s_namespace"] = observation.namespace
    return fields


def _towards_running(status: str, observation: DatabaseObservation, poll: float) -> StepResult:
    fields = _fields(observation)
    if observation.phase == DatabasePhase.RUNNING and observation.connection_url:
        return StepResult(ResourceStatus.RUNNING, recheck_in=settings.RECONCILE_DRIFT_CHECK_SECONDS, fields=fields)
    if observation.phase == DatabasePhase.FAILED:
        return StepResult(ResourceStatus.ERROR, last_error=observation.message or "The database failed.", fields=fields)
    next_status = ResourceStatus.STARTING if status == ResourceStatus.CREATING else status
    return StepResult(next_status, recheck_in=poll, fields=fields)


def lost_data_message(database: Database) -> str:
    return (
        f"The database {database.name} is gone, and its data with it: it was removed outside the platform. "
        "Nothing was re-created. Re-create it empty from the project's Database page (or the API), or restore "
        "it from a backup of your own."
    )


def step(database: Database) -> StepResult:
    backend = get_database_backend()
    poll = getattr(backend, "poll_interval", 1.0)
    status = database.status
    if status in (ResourceStatus.STOPPED, ResourceStatus.TERMINATED, ResourceStatus.ERROR):
        return StepResult(status)
    spec = build_spec(database)
    if status == ResourceStatus.CREATING:
        return _towards_running(status, backend.create(spec), poll)
    if status in (ResourceStatus.STARTING, ResourceStatus.UPDATING):
        if database.recreate_requested:
            result = _towards_running(ResourceStatus.STARTING, backend.start(spec), poll)
            result.fields["recreate_requested"] = False
            return result
        # A database that existed (it had a URL) and is now missing had data that is lost: starting
        # would quietly give the app an empty one. Only the user's explicit re-create does that.
        if database.connection_url and backend.observe(spec).phase == DatabasePhase.MISSING:
            return StepResult(ResourceStatus.ERROR, last_error=lost_data_message(database))
        wait = restart_wait(database)
        if wait:
            return StepResult(status, recheck_in=wait)
        return _towards_running(ResourceStatus.STARTING, backend.start(spec), poll)
    if status == ResourceStatus.RUNNING:
        observation = backend.observe(spec)
        if observation.phase == DatabasePhase.MISSING:
            return StepResult(ResourceStatus.ERROR, last_error=lost_data_message(database), fields=_fields(observation))
        if observation.phase in (DatabasePhase.STOPPED, DatabasePhase.STOPPING):
            # Drift: wanted running, found not accepting connections (changed by hand): start
            # allows them again; the data is there, and last_error says what happened.
            return drift_restart(
                database, f"The database was found {observation.phase.value} while it should run;", _fields(observation)
            )
        return _towards_running(status, observation, poll)
    if status == ResourceStatus.STOPPING:
        observation = backend.stop(spec)
        if observation.phase in (DatabasePhase.STOPPED, DatabasePhase.MISSING):
            return StepResult(ResourceStatus.STOPPED, fields=_fields(observation))
        return StepResult(status, recheck_in=poll, fields=_fields(observation))
    if status == ResourceStatus.TERMINATING:
        observation = backend.delete(spec)
        if observation.phase == DatabasePhase.MISSING:
            return StepResult(ResourceStatus.TERMINATED, fields=_fields(observation))
        return StepResult(status, recheck_in=poll, fields=_fields(observation))
    raise ValueError(f"unknown database status {status!r}")
