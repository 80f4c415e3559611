"""One reconcile step for a sandbox: read the desired state from the row, act through the backend.

The step reads what the sandbox's environment is built from (its project's variables and its
database's URL) through the row's own relations (``sandbox.project.environment``,
``project.database``), the schema every resource row already depends on, and imports neither
projects nor databases: it is called by the orchestrator (projects.tasks), never the other way.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from fullstackagent.reconcile import StepResult, drift_restart, restart_wait
from fullstackagent.status import ResourceStatus
from identities.models import ConfigKey, UserConfig, UserQuota
from identities.services import user_config_map
from sandboxes import idle
from sandboxes.backends import get_sandbox_backend
from sandboxes.backends.base import Owner, SandboxObservation, SandboxPhase, SandboxSpec
from sandboxes.environment import TERMINAL_TOKEN_KEY, build_environment, environment_hash
from sandboxes.models import Sandbox

# How long a new sandbox waits for its database's URL before starting without DATABASE_URL (it
# then gets it through an environment update). Local databases take well under a second.
DATABASE_WAIT_SECONDS = 15
DRIFT_NOTE = "The sandbox was found"


def _database_of(project):
    """The project's database row as it is now (not a cached ``project.database``: a step may run
    on a project object loaded before the database got its URL), or None when it has none."""
    model = project._meta.get_field("database").related_model
    return model.objects.filter(project_id=project.pk).first()


def build_spec(sandbox: Sandbox) -> SandboxSpec:
    project = sandbox.project
    user_config = user_config_map(project.user_id)
    limits = UserQuota.limits_for(project.user_id)
    database = _database_of(project)
    if database is not None and database.status == ResourceStatus.TERMINATED:
        database = None
    environment = build_environment(
        project_name=project.name,
        project_variables=dict(project.environment.values_list("key", "value")),
        database_url=database.connection_url if database else "",
        user_config=user_config,
        settings_url=f"{settings.PUBLIC_URL}/settings/?tab=anthropic" if settings.PUBLIC_URL else "",
    )
    return SandboxSpec(
        sandbox_id=sandbox.pk,
        name=sandbox.name,
        project_id=project.pk,
        project_name=project.name,
        project_k8s_name=project.k8s_name,
        namespace=sandbox.k8s_namespace,
        owner=Owner(user_id=project.user_id, kubeconfig=user_config.get(ConfigKey.KUBECONFIG) or None),
        environment=environment,
        environment_hash=environment_hash(environment),
        runtime_state=dict(sandbox.runtime_state or {}),
        recreate_workspace=sandbox.recreate_requested,
        cpu_limit=limits["sandbox_cpu"],
        memory_limit=limits["sandbox_memory"],
    )


_NOT_LOADED = object()


def terminal_spec(sandbox: Sandbox, token=_NOT_LOADED) -> SandboxSpec:
    """What a backend's terminal_upstream needs, and nothing more: the terminal token (one row)
    instead of the whole environment (every variable decrypted, the user's settings, the quota
    and the database), and the kubeconfig only for the Kubernetes backend. A terminal is opened
    far more often than a sandbox is reconciled; this is most of an admission's database work saved.
    ``sandbox.project`` is expected loaded (select_related); ``token``, when the caller read it
    with the sandbox (sandboxes.terminal), saves the query for it."""
    project = sandbox.project
    if token is _NOT_LOADED:
        token = project.environment.filter(key=TERMINAL_TOKEN_KEY).values_list("value", flat=True).first()
    kubeconfig = None
    if settings.SANDBOX_BACKEND == "kubernetes":
        kubeconfig = (
            UserConfig.objects.filter(user_id=project.user_id, key=ConfigKey.KUBECONFIG).values_list("value", flat=True).first()
        )
    return terminal_spec_of(
        sandbox_id=sandbox.pk, name=sandbox.name, namespace=sandbox.k8s_namespace, runtime_state=sandbox.runtime_state,
        project_id=project.pk, project_name=project.name, project_k8s_name=project.k8s_name, user_id=project.user_id,
        token=token, kubeconfig=kubeconfig,
    )


def terminal_spec_of(*, sandbox_id, name, namespace, runtime_state, project_id, project_name, project_k8s_name, user_id,
                     token, kubeconfig) -> SandboxSpec:
    """terminal_spec from values already read (sandboxes.terminal reads them in one query)."""
    return SandboxSpec(
        sandbox_id=sandbox_id,
        name=name,
        project_id=project_id,
        project_name=project_name,
        project_k8s_name=project_k8s_name,
        namespace=namespace,
        owner=Owner(user_id=user_id, kubeconfig=kubeconfig or None),
        environment={TERMINAL_TOKEN_KEY: token} if token else {},
        environment_hash="",  # not known here, and not needed for a terminal
        runtime_state=dict(runtime_state or {}),
    )


def _observed_fields(observation: SandboxObservation) -> dict:
    fields = {"runtime_state": observation.runtime_state}
    if observation.public_url:
        fields["public_url"] = observation.public_url
    if observation.ttyd_url:
        fields["ttyd_url"] = observation.ttyd_url
    if observation.app_upstream:
        fields["app_upstream"] = observation.app_upstream
    if observation.namespace:
        fields["k8s_namespace"] = observation.namespace
    if observation.phase == SandboxPhase.RUNNING:
        fields["applied_environment_hash"] = observation.applied_environment_hash
    return fields


def _towards_running(status: str, observation: SandboxObservation, spec: SandboxSpec, poll: float) -> StepResult:
    fields = _observed_fields(observation)
    if observation.phase == SandboxPhase.RUNNING:
        if observation.applied_environment_hash != spec.environment_hash:
            return StepResult(ResourceStatus.UPDATING, recheck_in=0, fields=fields)
        return StepResult(ResourceStatus.RUNNING, recheck_in=settings.RECONCILE_DRIFT_CHECK_SECONDS, fields=fields)
    if observation.phase == SandboxPhase.FAILED:
        return StepResult(ResourceStatus.ERROR, last_error=observation.message or "The sandbox failed to start.", fields=fields)
    # Still booting: CREATING becomes STARTING once something exists. A RUNNING sandbox whose
    # terminal stopped answering (its ttyd crashed and is being started again) says so: STARTING.
    if status in (ResourceStatus.CREATING, ResourceStatus.RUNNING):
        return StepResult(ResourceStatus.STARTING, recheck_in=poll, fields=fields)
    return StepResult(status, recheck_in=poll, fields=fields)


def _database_pending(sandbox: Sandbox) -> bool:
    database = _database_of(sandbox.project)
    if database is None or database.connection_url:
        return False
    if database.status not in (ResourceStatus.CREATING, ResourceStatus.STARTING):
        return False
    return timezone.now() - sandbox.created < timedelta(seconds=DATABASE_WAIT_SECONDS)


def step(sandbox: Sandbox) -> StepResult:
    backend = get_sandbox_backend()
    poll = getattr(backend, "poll_interval", 1.0)
    status = sandbox.status
    if status in (ResourceStatus.STOPPED, ResourceStatus.TERMINATED, ResourceStatus.ERROR):
        # Nothing is due: these change only when the user asks (start, delete).
        return StepResult(status)
    if status == ResourceStatus.CREATING and _database_pending(sandbox):
        return StepResult(status, recheck_in=poll)
    spec = build_spec(sandbox)

    if status == ResourceStatus.CREATING:
        return _towards_running(status, backend.create(spec), spec, poll)
    if status == ResourceStatus.STARTING:
        if sandbox.restart_requested:
            # The user's explicit restart: every process ends, the sandbox starts again.
            result = _towards_running(status, backend.restart(spec), spec, poll)
            result.fields["restart_requested"] = False
            return result
        wait = restart_wait(sandbox)
        if wait:
            # A crash loop's restart waits its turn (a duplicate message must not start it early).
            return StepResult(status, recheck_in=wait)
        # The drift note (why it restarted) stays in last_error until the user's next start/stop.
        result = _towards_running(status, backend.start(spec), spec, poll)
        if sandbox.recreate_requested:
            result.fields["recreate_requested"] = False
        return result
    if status == ResourceStatus.UPDATING:
        observation = backend.observe(spec)
        if not (
            observation.phase == SandboxPhase.RUNNING
            and observation.applied_environment_hash == spec.environment_hash
        ):
            observation = backend.apply_environment(spec)
        if observation.phase == SandboxPhase.RUNNING and observation.applied_environment_hash == spec.environment_hash:
            return StepResult(ResourceStatus.RUNNING, recheck_in=settings.RECONCILE_DRIFT_CHECK_SECONDS, fields=_observed_fields(observation))
        if observation.phase == SandboxPhase.FAILED:
            return StepResult(ResourceStatus.ERROR, last_error=observation.message, fields=_observed_fields(observation))
        return StepResult(ResourceStatus.UPDATING, recheck_in=poll, fields=_observed_fields(observation))
    if status == ResourceStatus.RUNNING:
        observation = backend.observe(spec)
        if observation.phase in (SandboxPhase.MISSING, SandboxPhase.STOPPED, SandboxPhase.FAILED, SandboxPhase.STOPPING):
            # Drift: the user wants this sandbox running and it is not (a crashed process, a
            # machine restart, a pod deleted by hand). Like a StatefulSet controller we bring it
            # back, through STARTING so the UI shows it, and say why in last_error. One that keeps
            # crashing is restarted with a growing delay and ends in ERROR (drift_restart).
            return drift_restart(
                sandbox,
                f"{DRIFT_NOTE} {observation.phase.value} while it should run;",
                _observed_fields(observation),
            )
        result = _towards_running(status, observation, spec, poll)
        if result.status == ResourceStatus.RUNNING:
            # The agent (or a keep-awake process) working counts as use; the task stops a sandbox
            # idle for too long after this step (projects.tasks).
            result.fields.update(idle.look_for_work(sandbox, backend, spec))
        return result
    if status == ResourceStatus.STOPPING:
        observation = backend.stop(spec)
        fields = _observed_fields(observation)
        if observation.phase in (SandboxPhase.STOPPED, SandboxPhase.MISSING):
            return StepResult(ResourceStatus.STOPPED, fields=fields)
        return StepResult(status, recheck_in=poll, fields=fields)
    if status == ResourceStatus.TERMINATING:
        observation = backend.delete(spec)
        fields = _observed_fields(observation)
        if observation.phase == SandboxPhase.MISSING:
            return StepResult(ResourceStatus.TERMINATED, fields=fields)
        return StepResult(status, recheck_in=poll, fields=fields)
    raise ValueError(f"unknown sandbox status {status!r}")
