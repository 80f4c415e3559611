"""Reads of projects for the API and the pages, each in a fixed number of queries.

The projects page and ``GET /api/projects`` run one query whatever the number of projects (the
projects joined with their sandbox and database; pinned by tests/api/test_queries.py), and
never load a database's connection URL (decrypting it per row would cost more than the whole
query). One project with its resources is one query too.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ObjectDoesNotExist
from django.db import connection
from django.http import Http404
from django.utils import timezone

from databases.models import Database
from fullstackagent.encryption import mask
from fullstackagent.status import ProjectStatus, ResourceStatus
from projects.models import Environment, EnvironmentCategory, Project, ResourceEvent
from projects.services import allowed_actions
from sandboxes.models import Sandbox

# Columns the list and the layout show; ttyd_url and connection_url are deliberately absent.
# applied_environment_hash: the status bar tells the terminal page when the environment changed.
_SANDBOX_FIELDS = ("id", "name", "status", "last_error", "public_url", "applied_environment_hash", "updated")
_DATABASE_FIELDS = ("id", "name", "status", "last_error", "updated")


@dataclass(frozen=True)
class ResourceSummary:
    """What the project list shows of a sandbox or database, read from project_list's one row per
    project: building model instances cost more than the query."""

    id: int
    project_id: int
    name: str
    status: str
    last_error: str
    updated: datetime
    public_url: str = ""
    applied_environment_hash: str = ""

    @property
    def pk(self) -> int:
        return self.id

    def get_status_display(self) -> str:
        return ResourceStatus(self.status).label


def _shown_with(status: str, sandbox, database) -> dict:
    """What a project shows next to its own fields: its sandbox and database, the actions its
    status allows and the app's URL."""
    statuses = [resource.status for resource in (sandbox, database) if resource]
    return {
        "sandbox": sandbox,
        "database": database,
        "allowed_actions": sorted(allowed_actions(status, statuses)),
        "public_url": sandbox.public_url if sandbox else "",
    }


def related_or_none(project: Project, name: str):
    """``project.sandbox`` or ``project.database`` (one-to-one), None when the project has none."""
    try:
        return getattr(project, name)
    except ObjectDoesNotExist:
        return None


def _annotate(project: Project) -> Project:
    """Sets ``allowed_actions`` and ``public_url`` from the project's sandbox and database (the
    one-to-one relations, loaded by the caller)."""
    shown = _shown_with(project.status, related_or_none(project, "sandbox"), related_or_none(project, "database"))
    project.allowed_actions, project.public_url = shown["allowed_actions"], shown["public_url"]
    return project


def _with_resources(projects) -> list:
    """The projects (a queryset) with their sandbox and database joined in, and ``allowed_actions``
    and ``public_url`` set: one query. The database's connection URL is not loaded (nor decrypted)."""
    return [
        _annotate(project)
        for project in projects.select_related("sandbox", "database").defer("database__connection_url")
    ]


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


@dataclass
class ProjectSummary:
    """A project as the list shows it (the API's list and the projects page's cards)."""

    id: int
    name: str
    description: str
    status: str
    created: datetime
    updated: datetime
    sandbox: ResourceSummary | None
    database: ResourceSummary | None
    allowed_actions: list[str]
    public_url: str

    @property
    def pk(self) -> int:
        return self.id


_PROJECT_COLUMNS = ("id", "name", "description", "status", "created", "updated")


def _columns(model, alias: str, names) -> str:
    return ", ".join(f'{alias}."{model._meta.get_field(name).column}"' for name in names)


# Written once from the models' metadata rather than compiled by the ORM on every call: compiling
# the equivalent queryset cost more than running it (bench/api.py). The filters are appended as
# parameters by project_list.
_LIST_SQL = (
    f'SELECT {_columns(Project, "p", _PROJECT_COLUMNS)}, '
    f'{_columns(Sandbox, "s", _SANDBOX_FIELDS)}, {_columns(Database, "d", _DATABASE_FIELDS)} '
    f'FROM "{Project._meta.db_table}" p '
    f'LEFT JOIN "{Sandbox._meta.db_table}" s ON s."project_id" = p."id" '
    f'LEFT JOIN "{Database._meta.db_table}" d ON d."project_id" = p."id" '
    f'WHERE p."user_id" = %s AND p."status" <> %s'
)


def _summary_at(row, start: int, fields, project_id: int) -> ResourceSummary | None:
    """The resource whose ``fields`` start at ``row[start]``; None when the LEFT JOIN found none."""
    values = row[start:start + len(fields)]
    if values[0] is None:
        return None
    return ResourceSummary(project_id=project_id, **dict(zip(fields, values)))


def _like_pattern(text: str) -> str:
    """``text`` anywhere, with LIKE's wildcards in it matched literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def project_list(user, *, q: str = "", created_from: date | None = None, created_to: date | None = None) -> list:
    """The user's visible projects, newest first, filtered by keyword (name or description, any
    case) and by creation date (both days included). One query whatever their number: the list is
    the API's and the projects page's most frequent request (the page polls it every 3 s), and
    model instances, three queries and the ORM's compiling cost more than the data (bench/api.py)."""
    sql, params = _LIST_SQL, [user.pk, ProjectStatus.TERMINATED]
    q = (q or "").strip()
    if q:
        sql += ' AND (p."name" ILIKE %s OR p."description" ILIKE %s)'
        params += [_like_pattern(q)] * 2
    # Ranges on the column itself (not its date) so project_user_created_idx serves them.
    if created_from:
        sql += ' AND p."created" >= %s'
        params.append(_day_start(created_from))
    if created_to:
        sql += ' AND p."created" < %s'
        params.append(_day_start(created_to + timedelta(days=1)))
    sql += ' ORDER BY p."created" DESC, p."id" DESC'
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    sandbox_at, database_at = len(_PROJECT_COLUMNS), len(_PROJECT_COLUMNS) + len(_SANDBOX_FIELDS)
    return [
        ProjectSummary(
            *row[:sandbox_at],
            **_shown_with(
                row[_PROJECT_COLUMNS.index("status")],
                _summary_at(row, sandbox_at, _SANDBOX_FIELDS, project_id=row[0]),
                _summary_at(row, database_at, _DATABASE_FIELDS, project_id=row[0]),
            ),
        )
        for row in rows
    ]


def owned_project(user, project_id) -> Project:
    """One of the user's visible projects with its resources; another user's project is a 404,
    exactly like a missing one."""
    projects = _with_resources(Project.objects.visible().owned_by(user).filter(pk=project_id))
    if not projects:
        raise Http404("Project not found.")
    return projects[0]


def just_created(project: Project) -> Project:
    """The project projects.services.do_create_project returned, annotated from the sandbox and
    database it carries: no query."""
    return _annotate(project)


def with_resources(project: Project) -> Project:
    """A project some other code loaded, read again with its sandbox, database and allowed actions."""
    return _with_resources(Project.objects.filter(pk=project.pk))[0]


def sidebar_projects(user) -> list:
    """Names and statuses for the project layout's sidebar: one query."""
    return list(Project.objects.visible().owned_by(user).only("id", "name", "status"))


def project_page_context(request, project_id) -> dict:
    """What templates/projects/layout.html needs: the project (404 unless the user owns it) and the
    sidebar's projects. Views extending the layout start from this; the layout's template tags
    load the sidebar themselves when a view passes only ``project``."""
    return {
        "project": owned_project(request.user, project_id),
        "sidebar_projects": sidebar_projects(request.user),
    }


def variables(project: Project, category: str | None = None) -> list:
    """The project's variables, the terminal token excluded (it is never listed anywhere)."""
    rows = Environment.objects.filter(project=project).exclude(category=EnvironmentCategory.TTYD)
    if category:
        rows = rows.filter(category=category)
    return list(rows.order_by("category", "key"))


def owned_variable(project: Project, variable_id) -> Environment:
    variable = (
        Environment.objects.filter(project=project, pk=variable_id).exclude(category=EnvironmentCategory.TTYD).first()
    )
    if variable is None:
        raise Http404("Variable not found.")
    return variable


@dataclass(frozen=True)
class DatabaseConnection:
    """The parts of a database's connection URL the Database page shows."""

    status: str
    available: bool
    host: str = ""
    port: int | None = None
    database: str = ""
    user: str = ""
    password: str = ""
    connection_string: str = ""

    def masked(self) -> "DatabaseConnection":
        if not self.available:
            return self
        masked_password = mask(self.password)
        return DatabaseConnection(
            status=self.status,
            available=True,
            host=self.host,
            port=self.port,
            database=self.database,
            user=self.user,
            password=masked_password,
            connection_string=self.connection_string.replace(_quoted_password(self.connection_string), masked_password, 1)
            if self.password
            else self.connection_string,
        )


def _quoted_password(url: str) -> str:
    netloc = urlsplit(url).netloc
    credentials = netloc.rpartition("@")[0]
    return credentials.partition(":")[2]


def database_connection(project: Project) -> DatabaseConnection:
    """The project's database connection, password in clear: callers mask it unless the owner
    asked to reveal it."""
    database = Database.objects.filter(project=project).first()
    if database is None:
        return DatabaseConnection(status="", available=False)
    url = database.connection_url
    if not url:
        return DatabaseConnection(status=database.status, available=False)
    parts = urlsplit(url)
    return DatabaseConnection(
        status=database.status,
        available=True,
        host=parts.hostname or "",
        port=parts.port,
        database=unquote(parts.path.lstrip("/")),
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        connection_string=url,
    )


# The history page and GET /api/projects/{id}/events show this many of the latest events.
EVENTS_SHOWN = 200


def owned_project_history(user, project_id) -> Project:
    """One of the user's projects, deleted ones included: their history outlives them (soft delete)."""
    project = Project.objects.owned_by(user).filter(pk=project_id).first()
    if project is None:
        raise Http404("Project not found.")
    return project


def project_events(project: Project, limit: int = EVENTS_SHOWN) -> list[ResourceEvent]:
    """A project's latest resource events, newest first (index resource_event_project_idx)."""
    return list(ResourceEvent.objects.filter(project=project).order_by("-created", "-id")[:limit])


def resource_restarts(project: Project) -> list[dict]:
    """Each of the project's resources with its status and crash-loop count (drift restarts in a row)."""
    return [
        {"kind": kind, "name": row.name, "status": row.status, "restarts": row.restarts}
        for kind, model in (("Sandbox", Sandbox), ("Database", Database))
        for row in model.objects.filter(project=project).only("name", "status", "restarts").order_by("pk")
    ]
