"""Writes to projects: create, start, stop, restart, delete, environment variables; quotas.

Each ``do_<verb>`` validates, locks the project row, changes the desired state of its resources in
one transaction and queues their reconcile tasks after commit. Nothing here waits for
infrastructure: the reconcilers converge it (fullstackagent.reconcile).
"""

import logging
import re
import secrets
from datetime import timedelta
from functools import lru_cache

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from databases.models import Database
from fullstackagent.inserts import insert_together
from fullstackagent.status import ProjectStatus, ResourceStatus, TransitionCause, aggregate_status
from identities.models import ConfigKey, UserConfig, UserQuota
from projects.events import record_transition, record_transitions, transition_events
from projects.models import Environment, EnvironmentCategory, IdempotencyKey, Project, ResourceEvent, ResourceKind
from projects.naming import k8s_project_name, resource_name, validate_project_name
from sandboxes import idle
from sandboxes.environment import RESERVED_KEYS, TERMINAL_TOKEN_KEY
from sandboxes.models import Sandbox

logger = logging.getLogger(__name__)


class ActionNotAllowed(Exception):
    """A start/stop/delete the project's current status does not allow; the message says why."""

    def __init__(self, message: str, code: str = "ACTION_NOT_ALLOWED"):
        super().__init__(message)
        self.code = code


class KubeconfigMissing(Exception):
    code = "KUBECONFIG_MISSING"


class QuotaExceeded(ActionNotAllowed):
    """Over one of the user's limits (identities.UserQuota, settings QUOTA_*): HTTP 409; the message
    says the limit and how to free one."""

    def __init__(self, message: str):
        super().__init__(message, code="QUOTA_EXCEEDED")


# Sandboxes that count as running for the quota: everything that holds (or is about to hold) a
# process or a pod.
_COUNTED_AS_RUNNING = [ResourceStatus.CREATING, ResourceStatus.STARTING, ResourceStatus.RUNNING, ResourceStatus.UPDATING]


@lru_cache(maxsize=1)
def _lock_user_statement() -> str:
    meta = get_user_model()._meta
    quote = connection.ops.quote_name
    return f"SELECT 1 FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} = %s FOR NO KEY UPDATE"


def _lock_user(user_id: int) -> None:
    """Serializes one user's creates and starts, so two at once cannot both pass a quota check.
    Taken before any project row (user, then project: the one order). Written once rather than
    compiled by the ORM on every create (0.1 ms of one)."""
    with connection.cursor() as cursor:
        cursor.execute(_lock_user_statement(), [user_id])


def _running_sandboxes(user_id) -> QuerySet:
    return Sandbox.objects.filter(project__user_id=user_id, status__in=_COUNTED_AS_RUNNING)


def _counted_projects(user_id) -> QuerySet:
    return Project.objects.visible().filter(user_id=user_id).exclude(status=ProjectStatus.TERMINATING)


def check_running_quota(user_id: int, limits: dict, *, starting_project_id: int | None = None) -> None:
    running = _running_sandboxes(user_id).exclude(project_id=starting_project_id).count()
    refuse_over_running_quota(limits, running)


def refuse_over_running_quota(limits: dict, running: int) -> None:
    limit = limits["running_sandboxes"]
    if running >= limit:
        raise QuotaExceeded(
            f"Your limit is {limit} running sandbox{'es' if limit != 1 else ''} and {running} "
            f"{'are' if running != 1 else 'is'} running or starting. Stop a project you are not using, then try again."
        )


def refuse_over_project_quota(limits: dict, count: int) -> None:
    limit = limits["projects"]
    if count >= limit:
        raise QuotaExceeded(
            f"Your limit is {limit} project{'s' if limit != 1 else ''} and you have {count}. "
            "Delete a project you no longer need, then try again."
        )


# Stands for the user's id while the statement below is compiled; never a real id.
_USER_PLACEHOLDER = -1_987_654_321


@lru_cache(maxsize=1)
def _limits_and_usage_statement() -> tuple[str, tuple, int]:
    """The SQL of limits_and_usage(), compiled by the ORM once per process from the same querysets
    the checks count with, and where the user's id goes in its parameters."""
    counted = _counted_projects(OuterRef("pk")).order_by().values("user_id").annotate(n=Count("pk")).values("n")
    running = _running_sandboxes(OuterRef("pk")).order_by().values("project__user_id").annotate(n=Count("pk")).values("n")
    queryset = (
        get_user_model().objects.filter(pk=_USER_PLACEHOLDER)
        .annotate(counted_projects=Coalesce(Subquery(counted), 0), running_sandboxes=Coalesce(Subquery(running), 0))
        .values_list("counted_projects", "running_sandboxes", *(f"quota__{field}" for field in UserQuota.LIMIT_FIELDS))
    )
    sql, params = queryset.query.sql_with_params()
    (slot,) = [index for index, value in enumerate(params) if value == _USER_PLACEHOLDER]
    return sql, tuple(params), slot


def limits_and_usage(user_id: int) -> tuple[dict, int, int]:
    """The user's limits, their projects and their running (or starting) sandboxes, in one
    statement: three queries, each compiled by the ORM, were with the user's lock a quarter of a
    create's CPU (py-spy, bench/api.py). Run after _lock_user and in a statement of its own: a count
    in the locking statement would see the snapshot taken before the lock was granted, and miss the
    project of a concurrent create that just committed."""
    sql, params, slot = _limits_and_usage_statement()
    params = list(params)
    params[slot] = user_id
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return UserQuota.limits_from(row[2:]), row[0], row[1]


START, STOP, DELETE, RESTART = "start", "stop", "delete", "restart"

# From the original system's table, kept as data so the UI can offer only what is allowed. Stop is
# allowed while creating or updating (issue 13): a change stuck there must not leave only delete,
# which deletes the workspace too.
ALLOWED_ACTIONS = {
    ProjectStatus.RUNNING: {STOP, DELETE, RESTART},
    ProjectStatus.STOPPED: {START, DELETE},
    ProjectStatus.PARTIAL: {START, STOP, DELETE},
    ProjectStatus.ERROR: {START, STOP, DELETE},
    ProjectStatus.STARTING: {STOP, DELETE},
    ProjectStatus.STOPPING: {START, DELETE},
    ProjectStatus.CREATING: {STOP, DELETE},
    ProjectStatus.UPDATING: {STOP, DELETE},
    ProjectStatus.TERMINATING: set(),
    ProjectStatus.TERMINATED: set(),
}
# Start is refused while any resource is in one of these, stop while any is being deleted.
_BLOCKS_ACTION = {
    START: {ResourceStatus.CREATING, ResourceStatus.UPDATING, ResourceStatus.TERMINATING, ResourceStatus.TERMINATED},
    STOP: {ResourceStatus.TERMINATING, ResourceStatus.TERMINATED},
}

TERMINAL_TOKEN_BYTES = 32  # 256 bits, url-safe base64 → 43 characters


def allowed_actions(status: str, resource_statuses: list[str]) -> set[str]:
    actions = set(ALLOWED_ACTIONS.get(status, set()))
    return {action for action in actions if not _BLOCKS_ACTION.get(action, set()) & set(resource_statuses)}


def check_action(project: Project, action: str, resource_statuses: list[str]) -> None:
    if action in allowed_actions(project.status, resource_statuses):
        return
    blocking = sorted(_BLOCKS_ACTION.get(action, set()) & set(resource_statuses))
    if action in ALLOWED_ACTIONS.get(project.status, set()) and blocking:
        raise ActionNotAllowed(f"Cannot {action} the project while a resource is {blocking[0]}.")
    raise ActionNotAllowed(f"Cannot {action} a project that is {project.status}.")


# Queued by name, not through the task object: projects.tasks calls these services, so importing
# it here would close a circle within the app. The name is the message's contract either way.
RECONCILE_RESOURCES_TASK = "projects.tasks.reconcile_resources"


def _queue_reconcile(sandbox_ids, database_ids) -> None:
    if not (sandbox_ids or database_ids):
        return
    try:
        current_app.send_task(RECONCILE_RESOURCES_TASK, args=(sandbox_ids, database_ids))
    except Exception:  # noqa: BLE001 - the change is committed; the beat's scan finds its rows
        # The rows were marked due (next_check_at) in the committed transaction, so the scan queues
        # them within RECONCILE_INTERVAL_SECONDS once the broker is back. Answering 500 here would
        # tell the client a committed change failed, and a retry would make a second project.
        logger.warning(
            "queueing reconcile of sandboxes %s and databases %s failed; the scan will pick them up",
            sandbox_ids, database_ids, exc_info=True,
        )


def queue_after_commit(sandbox_ids=(), database_ids=()) -> None:
    sandbox_ids, database_ids = list(sandbox_ids), list(database_ids)
    transaction.on_commit(lambda: _queue_reconcile(sandbox_ids, database_ids))


def refresh_project_status(project_id: int) -> str | None:
    """Re-aggregates one project's status from its resources and stores it if it changed (None
    when the project is gone).

    The project row is locked first. Two reconcile tasks finishing together (the sandbox and the
    database of a project being deleted) each refresh: without the lock, the one that read the
    statuses before the other's step landed could write its stale TERMINATING over the other's
    TERMINATED, and nothing would ever correct it. With it, the second waits for the first and then
    reads both steps' results."""
    with transaction.atomic():
        current = Project.objects.select_for_update(no_key=True).filter(pk=project_id).values_list("status", flat=True).first()
        if current is None:
            return None
        statuses = list(Sandbox.objects.filter(project_id=project_id).values_list("status", flat=True))
        statuses += list(Database.objects.filter(project_id=project_id).values_list("status", flat=True))
        status = aggregate_status(statuses)
        if status != current:
            Project.objects.filter(pk=project_id).update(status=status, updated=timezone.now())
    return status


# Statuses a project holds only while one of its resources is moving. A project still in one this
# long after its last change is refreshed by the beat's scan: the refresh after its last step may
# have been lost (a worker killed between the step's commit and the refresh, or PostgreSQL gone in
# between), and its resources, steady now, would never be stepped again to refresh it.
_IN_MOTION = (
    ProjectStatus.CREATING, ProjectStatus.STARTING, ProjectStatus.UPDATING, ProjectStatus.STOPPING,
    ProjectStatus.TERMINATING,
)
STALE_STATUS_SECONDS = 10
STALE_REFRESHES_PER_SCAN = 100


def refresh_stale_project_statuses() -> int:
    """Refreshes projects left in a moving status for STALE_STATUS_SECONDS; returns how many."""
    cutoff = timezone.now() - timedelta(seconds=STALE_STATUS_SECONDS)
    stale = Project.objects.filter(status__in=_IN_MOTION, updated__lt=cutoff).order_by("updated")
    project_ids = list(stale.values_list("pk", flat=True)[:STALE_REFRESHES_PER_SCAN])
    for project_id in project_ids:
        refresh_project_status(project_id)
    return len(project_ids)


def user_has_kubeconfig(user) -> bool:
    return UserConfig.objects.filter(user=user, key=ConfigKey.KUBECONFIG).exists()


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was used before for a create with other parameters."""

    code = "IDEMPOTENCY_KEY_REUSED"


@transaction.atomic
def do_create_project(user, *, name: str, description: str = "", idempotency_key: str = "") -> Project:
    """Records a new project with its sandbox, database and terminal token; answers at once.
    The project comes back with the new ``sandbox`` and ``database`` set on it, so callers can show
    them without reading them back (projects.selectors.just_created).

    With an ``idempotency_key`` the user used before, nothing is created: the project that create
    made comes back, with ``replayed`` set (a client retrying after a lost answer makes one project).
    Two concurrent creates with one key: the second waits on the key's unique index and fails with
    IntegrityError once the first commits; the caller retries and gets the replay."""
    name = validate_project_name(name)
    if idempotency_key:
        earlier = IdempotencyKey.objects.filter(user=user, key=idempotency_key).select_related("project").first()
        if earlier is not None:
            if earlier.project.name != name:
                raise IdempotencyKeyReused("This Idempotency-Key was used for another create.")
            earlier.project.replayed = True
            return earlier.project
    if settings.SANDBOX_BACKEND == "kubernetes" and not user_has_kubeconfig(user):
        raise KubeconfigMissing("Add your kubeconfig in settings before creating a project.")
    _lock_user(user.pk)
    limits, projects, running = limits_and_usage(user.pk)
    refuse_over_project_quota(limits, projects)
    refuse_over_running_quota(limits, running)  # its sandbox starts at once
    k8s_name = k8s_project_name(name)
    project = Project(user=user, name=name, k8s_name=k8s_name, description=description.strip())
    now = timezone.now()
    sandbox = Sandbox(project=project, name=resource_name(k8s_name), next_check_at=now)
    database = Database(project=project, name=resource_name(k8s_name), next_check_at=now)
    terminal_token = Environment(
        project=project,
        key=TERMINAL_TOKEN_KEY,
        value=secrets.token_urlsafe(TERMINAL_TOKEN_BYTES),
        category=EnvironmentCategory.TTYD,
        is_secret=True,
    )
    rows = [project, sandbox, database, terminal_token]
    rows += transition_events([sandbox, database], "", ResourceStatus.CREATING, cause=TransitionCause.USER)
    if idempotency_key:
        rows.append(IdempotencyKey(user=user, key=idempotency_key, project=project))
    # One statement for the six or seven rows, not one each (bench/api.py's create).
    insert_together(*rows)
    queue_after_commit([sandbox.pk], [database.pk])
    project.sandbox, project.database, project.replayed = sandbox, database, False
    return project


def _lock_project(project_id: int) -> None:
    """Holds the project row until the transaction ends (DoesNotExist if it is gone)."""
    Project.objects.select_for_update(no_key=True).values_list("pk", flat=True).get(pk=project_id)


def _locked_project(project: Project) -> tuple[Project, list[Sandbox], list[Database]]:
    # FOR NO KEY UPDATE, as every lock of a project, its resources or a user here: they serialize
    # services and change no key, so they need not block the key-share lock a foreign key check
    # takes. A reconcile step landing (its resource row updated, its event inserted: a check on the
    # project) would otherwise wait for a stop holding the project, which waits for that resource
    # row: a deadlock.
    project = Project.objects.select_for_update(no_key=True).get(pk=project.pk)
    # Rows locked in a fixed order (sandboxes, then databases, by pk) so two services never deadlock.
    sandboxes = list(Sandbox.objects.select_for_update(no_key=True).filter(project=project).order_by("pk"))
    databases = list(Database.objects.select_for_update(no_key=True).filter(project=project).order_by("pk"))
    return project, sandboxes, databases


def _set_desired(
    resources, status: str, *, skip: set[str], reason: str = "", cause: str = TransitionCause.USER,
    last_error: str = "", **flags,
) -> list[int]:
    """Moves resources to a transitional status, clears their error, retry and restart counts, sets
    ``flags`` (restart_requested=True ...), and records each transition as the user's (or as
    ``cause``: the idle stop acts for the user and says so, keeping ``last_error`` as its reason)."""
    changed = []
    now = timezone.now()
    for resource in resources:
        if resource.status in skip:
            continue
        type(resource).objects.filter(pk=resource.pk).update(
            status=status, status_changed_at=now, next_check_at=now, last_error=last_error, attempts=0,
            restarts=0, last_restart_at=None, updated=now, **flags,
        )
        record_transition(resource, resource.status, status, reason=reason, cause=cause)
        changed.append(resource.pk)
    return changed


def _run_action(project: Project, action: str, target: str, skip: set[str]) -> Project:
    project, sandboxes, databases = _locked_project(project)
    check_action(project, action, [r.status for r in sandboxes + databases])
    sandbox_ids = _set_desired(sandboxes, target, skip=skip)
    database_ids = _set_desired(databases, target, skip=skip)
    refresh_project_status(project.pk)
    queue_after_commit(sandbox_ids, database_ids)
    project.refresh_from_db()
    return project


@transaction.atomic
def do_start_project(project: Project) -> Project:
    """STOPPED, STOPPING or ERROR resources → STARTING (an ERROR one is re-created as needed)."""
    _lock_user(project.user_id)
    check_running_quota(project.user_id, UserQuota.limits_for(project.user_id), starting_project_id=project.pk)
    return _run_action(project, START, ResourceStatus.STARTING, {ResourceStatus.RUNNING, ResourceStatus.STARTING})


@transaction.atomic
def do_stop_project(project: Project) -> Project:
    return _run_action(project, STOP, ResourceStatus.STOPPING, {ResourceStatus.STOPPED, ResourceStatus.STOPPING})


@transaction.atomic
def do_stop_idle_project(sandbox_id: int) -> bool:
    """The platform stops a project whose sandbox nobody and nothing used for its owner's
    IDLE_STOP_MINUTES, as the user's Stop would (database included), with the idle reason on the
    sandbox and cause IDLE in the history. False when, under the locks, it turns out to be in use
    after all (a keystroke since the drift check) or no longer RUNNING."""
    project_id = Sandbox.objects.filter(pk=sandbox_id).values_list("project_id", flat=True).first()
    if project_id is None:
        return False
    project, sandboxes, databases = _locked_project(Project(pk=project_id))
    sandbox = next(sandbox for sandbox in sandboxes if sandbox.pk == sandbox_id)
    minutes = idle.limit_minutes(project.user_id)
    if not idle.is_due(sandbox, minutes):
        return False
    if STOP not in allowed_actions(project.status, [r.status for r in sandboxes + databases]):
        return False
    reason = idle.reason(minutes)
    skip = {ResourceStatus.STOPPED, ResourceStatus.STOPPING}
    sandbox_ids = _set_desired(sandboxes, ResourceStatus.STOPPING, skip=skip, reason=reason,
                               cause=TransitionCause.IDLE, last_error=reason)
    database_ids = _set_desired(databases, ResourceStatus.STOPPING, skip=skip, reason=reason, cause=TransitionCause.IDLE)
    refresh_project_status(project.pk)
    queue_after_commit(sandbox_ids, database_ids)
    logger.info("project %s: stopped after %s idle", project.pk, idle.describe(minutes))
    return True


def stopped_for_idle(project: Project) -> bool:
    """Whether the project's sandbox is stopped (or stopping) because it was idle: its last move to
    STOPPING was the idle stop's, not the user's."""
    sandbox = Sandbox.objects.filter(project=project).exclude(status=ResourceStatus.TERMINATED).order_by("-pk").first()
    if sandbox is None or sandbox.status not in (ResourceStatus.STOPPED, ResourceStatus.STOPPING):
        return False
    last_stop = (
        ResourceEvent.objects.filter(
            project=project, resource_kind=ResourceKind.SANDBOX, resource_id=sandbox.pk, to_status=ResourceStatus.STOPPING
        )
        .order_by("-created", "-id")
        .values_list("cause", flat=True)
        .first()
    )
    return last_stop == TransitionCause.IDLE


def do_wake_project(project: Project) -> bool:
    """Starts a project the idle stop stopped, when its owner opens it (the terminal page; the
    preview may call it too): the platform's own stop is undone by the next use. A stop the user
    chose stays until they press Start. Raises QuotaExceeded like Start; True when it started."""
    if not stopped_for_idle(project):
        return False  # the usual visit costs two reads and no lock
    with transaction.atomic():
        # The user, then the project (the one lock order); checked again under the locks, so two
        # tabs opening it at once start it once.
        _lock_user(project.user_id)
        Project.objects.select_for_update(no_key=True).filter(pk=project.pk).values_list("pk", flat=True).first()
        if not stopped_for_idle(project):
            return False
        do_start_project(project)
    return True


@transaction.atomic
def do_restart_project(project: Project) -> Project:
    """RUNNING sandbox → STARTING with a restart asked for: every process in it ends and starts
    again, with the current environment (a variable change alone reaches new shells only). The
    workspace and the database are kept."""
    project, sandboxes, databases = _locked_project(project)
    check_action(project, RESTART, [r.status for r in sandboxes + databases])
    running = [sandbox for sandbox in sandboxes if sandbox.status == ResourceStatus.RUNNING]
    sandbox_ids = _set_desired(
        running, ResourceStatus.STARTING, skip=set(), reason="Restart asked for.", restart_requested=True
    )
    refresh_project_status(project.pk)
    queue_after_commit(sandbox_ids, ())
    project.refresh_from_db()
    return project


@transaction.atomic
def do_recreate_database(project: Project) -> Project:
    """The user's explicit answer to a database found gone (or otherwise in ERROR): a new, empty one
    is made (databases.reconcile never does that by itself)."""
    project, sandboxes, databases = _locked_project(project)
    failed = [database for database in databases if database.status == ResourceStatus.ERROR]
    if not failed:
        raise ActionNotAllowed("Only a database in ERROR can be re-created.")
    database_ids = _set_desired(
        failed, ResourceStatus.STARTING, skip=set(), reason="Re-create empty asked for.", recreate_requested=True
    )
    refresh_project_status(project.pk)
    queue_after_commit((), database_ids)
    project.refresh_from_db()
    return project


@transaction.atomic
def do_recreate_workspace(project: Project) -> Project:
    """The user's explicit answer to a sandbox whose workspace was found gone (or otherwise in
    ERROR): it starts again with an empty, freshly seeded workspace."""
    project, sandboxes, databases = _locked_project(project)
    failed = [sandbox for sandbox in sandboxes if sandbox.status == ResourceStatus.ERROR]
    if not failed:
        raise ActionNotAllowed("Only a sandbox in ERROR can start again with an empty workspace.")
    sandbox_ids = _set_desired(
        failed, ResourceStatus.STARTING, skip=set(), reason="Start with an empty workspace asked for.", recreate_requested=True
    )
    refresh_project_status(project.pk)
    queue_after_commit(sandbox_ids, ())
    project.refresh_from_db()
    return project


@transaction.atomic
def do_delete_project(project: Project) -> Project:
    """Soft delete: resources → TERMINATING → TERMINATED; the rows stay for the audit trail."""
    return _run_action(
        project, DELETE, ResourceStatus.TERMINATING, {ResourceStatus.TERMINATED, ResourceStatus.TERMINATING}
    )


# --- environment variables -----------------------------------------------------------------------

ENVIRONMENT_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Limits that keep a project's environment inside what its sandbox's processes can be started with
# (README "Limits and security"): Linux's execve() refuses one KEY=value over 128 KiB
# (MAX_ARG_STRLEN) and all arguments and variables together over ARG_MAX (a quarter of the stack
# limit, 2 MiB by default: "Argument list too long"), and Kubernetes a Secret over 1 MiB. The
# total leaves the rest for the platform's own variables and the command line.
MAX_ENVIRONMENT_VALUE_BYTES = 32 * 1024
MAX_ENVIRONMENT_VARIABLES = 200
MAX_ENVIRONMENT_TOTAL_BYTES = 256 * 1024


def validate_variable(key: str, value: str) -> None:
    if not ENVIRONMENT_KEY_PATTERN.match(key or ""):
        raise ValidationError(
            "A variable name has letters, digits and underscores, does not start with a digit, "
            "and has at most 128 characters.",
            code="invalid_key",
        )
    if key.upper() in RESERVED_KEYS:
        raise ValidationError(f"{key} is set by the platform and cannot be changed.", code="reserved_key")
    if len(value.encode()) > MAX_ENVIRONMENT_VALUE_BYTES:
        raise ValidationError(
            f"A variable value has at most {MAX_ENVIRONMENT_VALUE_BYTES // 1024} KiB.", code="value_too_large"
        )
    if "\x00" in value:
        raise ValidationError("A variable value cannot contain a NUL character.", code="invalid_value")


def check_environment_limits(project: Project, changes: dict[str, str], *, removed: str | None = None) -> None:
    """Raises ValidationError when the project's environment, with ``changes`` (key → value)
    applied and ``removed`` gone, would pass the limits above. Callers hold the project's lock."""
    environment = dict(Environment.objects.filter(project=project).values_list("key", "value"))
    environment.pop(removed, None)
    environment.update(changes)
    count = len(environment.keys() - {TERMINAL_TOKEN_KEY})
    if count > MAX_ENVIRONMENT_VARIABLES:
        raise ValidationError(
            f"A project has at most {MAX_ENVIRONMENT_VARIABLES} variables; this would make {count}. Remove some first.",
            code="too_many_variables",
        )
    # As execve() counts them: "KEY=value" and its terminating NUL.
    total = sum(len(key.encode()) + len(value.encode()) + 2 for key, value in environment.items())
    if total > MAX_ENVIRONMENT_TOTAL_BYTES:
        raise ValidationError(
            f"A project's variables take at most {MAX_ENVIRONMENT_TOTAL_BYTES // 1024} KiB together (names and "
            f"values); this would make {-(-total // 1024)} KiB. Shorten or remove some first.",
            code="environment_too_large",
        )


@transaction.atomic
def do_set_variables(project: Project, variables: list[dict]) -> list[Environment]:
    """Creates or updates each given key; keys not given are left alone (never a bulk replace)."""
    for item in variables:
        validate_variable(item["key"], item.get("value", ""))
    # The project first, as every other path locks (then its variables, then its sandboxes): taking
    # variable rows first deadlocks with a stop or a status refresh holding the project. Also so two
    # concurrent requests cannot each pass the limits and together exceed them.
    _lock_project(project.pk)
    check_environment_limits(project, {item["key"]: item.get("value", "") for item in variables})
    rows = []
    for item in variables:
        category = item.get("category") or EnvironmentCategory.GENERAL
        is_secret = bool(item.get("is_secret")) or category == EnvironmentCategory.SECRET
        row, _ = Environment.objects.update_or_create(
            project=project,
            key=item["key"],
            defaults={"value": item.get("value", ""), "category": category, "is_secret": is_secret},
        )
        rows.append(row)
    if rows:
        environment_changed(project.pk)
    return rows


@transaction.atomic
def do_delete_variable(project: Project, key: str) -> bool:
    if key == TERMINAL_TOKEN_KEY:
        raise ValidationError(f"{key} is set by the platform and cannot be deleted.", code="reserved_key")
    _lock_project(project.pk)  # the project first (see do_set_variables)
    deleted, _ = Environment.objects.filter(project=project, key=key).delete()
    if deleted:
        environment_changed(project.pk)
    return bool(deleted)


def environment_changed(project_id: int) -> None:
    environment_changed_for_projects([project_id])


@transaction.atomic
def environment_changed_for_projects(project_ids) -> None:
    """A variable, the database URL or a user setting changed: running sandboxes of these projects
    go to UPDATING (the reconciler re-applies the environment, or returns to RUNNING at once when
    the effective environment did not change); others just get looked at."""
    # Projects first, then their sandboxes: the order the project services and
    # refresh_project_status lock in, so a variable saved during a stop cannot deadlock with it.
    list(Project.objects.select_for_update(no_key=True).filter(pk__in=project_ids).order_by("pk").values_list("pk", flat=True))
    now = timezone.now()
    running = Sandbox.objects.filter(project_id__in=project_ids, status=ResourceStatus.RUNNING)
    updating = list(running.select_for_update(no_key=True))
    updating_ids = [sandbox.pk for sandbox in updating]
    running.update(status=ResourceStatus.UPDATING, status_changed_at=now, next_check_at=now, updated=now)
    for sandbox in updating:
        record_transition(
            sandbox, ResourceStatus.RUNNING, ResourceStatus.UPDATING,
            reason="The environment changed.", cause=TransitionCause.USER,
        )
    others = Sandbox.objects.filter(project_id__in=project_ids).exclude(
        status__in=[ResourceStatus.TERMINATED, ResourceStatus.ERROR, ResourceStatus.STOPPED]
    ).exclude(pk__in=updating_ids)
    other_ids = list(others.values_list("pk", flat=True))
    others.update(next_check_at=now)
    for project_id in {sandbox.project_id for sandbox in updating}:
        refresh_project_status(project_id)
    queue_after_commit(sandbox_ids=updating_ids + other_ids)


def environment_changed_for_user(user_id: int) -> None:
    """A user setting the sandbox environment is built from changed (identities.signals
    user_config_changed): every visible project of the user's is looked at."""
    project_ids = list(Project.objects.filter(user_id=user_id).visible().values_list("pk", flat=True))
    if project_ids:
        environment_changed_for_projects(project_ids)


@transaction.atomic
def do_update_variable(
    project: Project,
    variable: Environment,
    *,
    value: str,
    key: str | None = None,
    category: str | None = None,
    is_secret: bool | None = None,
) -> Environment:
    """Changes one variable (``PUT /api/projects/{id}/environment/{envId}``); omitted fields keep
    their value. Renaming onto another variable's key is refused (ValidationError on ``key``)."""
    _lock_project(project.pk)  # renames of one project run one at a time
    variable = Environment.objects.select_for_update().get(pk=variable.pk, project=project)
    key = variable.key if key is None else key
    category = variable.category if category is None else category
    is_secret = variable.is_secret if is_secret is None else is_secret
    validate_variable(key, value)
    if key != variable.key and Environment.objects.filter(project=project, key=key).exists():
        raise ValidationError({"key": ValidationError(f"The project already has a variable {key}.", code="duplicate_key")})
    check_environment_limits(project, {key: value}, removed=variable.key)
    variable.key, variable.value, variable.category = key, value, category
    variable.is_secret = is_secret or category == EnvironmentCategory.SECRET
    variable.save()
    environment_changed(project.pk)
    return variable


# NextAuth's documentation asks for `openssl rand -base64 32`: the same, generated here so the
# browser never has to be trusted with randomness.
GENERATED_SECRET_BYTES = 32


def generate_secret_value() -> str:
    import base64

    return base64.b64encode(secrets.token_bytes(GENERATED_SECRET_BYTES)).decode()
