"""Create → RUNNING → stop → start → delete, end to end: real Celery worker and beat, real ttyd,
real PostgreSQL database per project."""

from pathlib import Path

import psycopg
from django.conf import settings

from databases.backends.local import local_identifier
from databases.models import Database
from fullstackagent.status import ProjectStatus, ResourceStatus
from fullstackagent.testing.processes import wait_for
from fullstackagent.testing.ttyd import run_command
from projects import services
from sandboxes.backends import get_sandbox_backend
from sandboxes.backends.local import marked_processes
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec


def _admin_connection():
    return psycopg.connect(settings.LOCAL_DATABASE_ADMIN_URL, autocommit=True)


def _database_exists(name):
    with _admin_connection() as connection:
        database = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        role = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
    return bool(database), bool(role)


def test_project_lifecycle_end_to_end(celery_worker, user, wait_for_status):
    project = services.do_create_project(user, name="My Blog")
    project = wait_for_status(project, ProjectStatus.RUNNING)
    sandbox = Sandbox.objects.get(project=project)
    database = Database.objects.get(project=project)
    assert sandbox.status == database.status == ResourceStatus.RUNNING
    assert database.connection_url.startswith(f"postgresql://{local_identifier(database.name)}:")

    # The database works from inside the sandbox, through the terminal, with the token.
    upstream = get_sandbox_backend().terminal_upstream(build_spec(sandbox))
    output = run_command(upstream, "psql \"$DATABASE_URL\" -Atc 'select 40 + 2'", r"\n42\s*\n")
    assert "42" in output
    app_port = sandbox.public_url.rsplit(":", 1)[1].rstrip("/")
    assert sandbox.public_url == f"http://127.0.0.1:{app_port}/"
    run_command(upstream, "echo project=$PROJECT_NAME port=$PORT", rf"project=My Blog port={app_port}\n")
    # Nothing of the platform's own environment leaks into the sandbox.
    output = run_command(upstream, "echo secret=[$SECRET_KEY] token=[$TTYD_ACCESS_TOKEN]", r"secret=\[[^$\]]*\] token=\[[^$\]]*\]\n")
    assert "secret=[] token=[]" in output

    # Stop: no process left, the workspace file stays.
    run_command(upstream, "echo kept > notes.txt && echo written", r"\nwritten")
    workspace = Path(settings.LOCAL_SANDBOX_ROOT) / sandbox.name / "workspace"
    assert (workspace / "notes.txt").read_text() == "kept\n"
    services.do_stop_project(project)
    wait_for_status(project, ProjectStatus.STOPPED)
    assert marked_processes(sandbox.name) == []
    assert (workspace / "notes.txt").read_text() == "kept\n"

    # Start: running again, same workspace, same database and password.
    services.do_start_project(project)
    wait_for_status(project, ProjectStatus.RUNNING)
    sandbox.refresh_from_db()
    upstream = get_sandbox_backend().terminal_upstream(build_spec(sandbox))
    run_command(upstream, "cat notes.txt", r"\nkept")
    with psycopg.connect(Database.objects.get(pk=database.pk).connection_url) as connection:
        assert connection.execute("select 1").fetchone() == (1,)

    # Delete: process, workspace, database and role all gone; the project leaves the list.
    services.do_delete_project(project)
    wait_for_status(project, ProjectStatus.TERMINATED)
    assert marked_processes(sandbox.name) == []
    assert not (Path(settings.LOCAL_SANDBOX_ROOT) / sandbox.name).exists()
    assert _database_exists(local_identifier(database.name)) == (False, False)
    assert list(type(project).objects.visible().owned_by(user)) == []


def test_stopped_database_refuses_connections(celery_worker, user, wait_for_status):
    project = services.do_create_project(user, name="Shop")
    wait_for_status(project, ProjectStatus.RUNNING)
    url = Database.objects.get(project=project).connection_url
    with psycopg.connect(url) as connection:
        assert connection.execute("select 1").fetchone() == (1,)
    services.do_stop_project(project)
    wait_for_status(project, ProjectStatus.STOPPED)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as error:
        assert "not currently accepting connections" in str(error)
    else:
        raise AssertionError("a stopped database accepted a connection")
