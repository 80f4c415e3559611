"""A project database (or a sandbox's workspace) removed behind the platform's back is never quietly re-created empty: the project
goes to ERROR with a reason that says the data is gone, Start does not re-create it either, and only the
user's explicit "re-create empty database" does."""

import shutil

import psycopg
from django.conf import settings
from django.test import Client
from psycopg import sql

from databases.backends.local import local_identifier
from databases.models import Database
from fullstackagent.status import ProjectStatus, ResourceStatus
from projects import services
from projects.models import Project
from projects.tasks import reconcile_database, reconcile_sandbox
from sandboxes.backends import get_sandbox_backend
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec


def converge(database_pk, steps=4) -> Database:
    for _ in range(steps):
        reconcile_database(database_pk)
        database = Database.objects.get(pk=database_pk)
        if database.status in (ResourceStatus.RUNNING, ResourceStatus.ERROR, ResourceStatus.TERMINATED):
            return database
    return database


def admin():
    return psycopg.connect(settings.LOCAL_DATABASE_ADMIN_URL, autocommit=True)


def exists(name: str) -> bool:
    with admin() as connection:
        return connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def test_a_dropped_database_stops_the_project_with_the_reason_until_the_user_recreates_it(transactional_db, user):
    project = services.do_create_project(user, name="Shop Data")
    Sandbox.objects.filter(project=project).update(status=ResourceStatus.STOPPED)  # not needed here
    database = converge(Database.objects.get(project=project).pk)
    assert database.status == ResourceStatus.RUNNING
    name = local_identifier(database.name)
    with psycopg.connect(database.connection_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE orders (id int)")

    # Someone drops it behind the platform's back.
    with admin() as connection:
        connection.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    database = converge(database.pk)

    assert database.status == ResourceStatus.ERROR
    assert database.last_error.startswith(f"The database {database.name} is gone, and its data with it")
    assert not exists(name)
    services.refresh_project_status(project.pk)
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.ERROR

    # Start does not re-create it either: the reason stands.
    services.do_start_project(Project.objects.get(pk=project.pk))
    database = converge(database.pk)
    assert database.status == ResourceStatus.ERROR
    assert "is gone" in database.last_error
    assert not exists(name)

    # The page shows the reason and offers the explicit re-create.
    client = Client()
    client.force_login(user)
    page = client.get(f"/projects/{project.pk}/database/").content.decode()
    assert "is gone, and its data with it" in page
    assert 'id="database-recreate"' in page

    # The user asks (through the API): a new, empty database.
    response = client.post(f"/api/projects/{project.pk}/database/recreate")
    assert response.status_code == 200
    assert response.json()["message"] == "A new, empty database is being created for Shop Data."
    database = converge(database.pk)
    assert (database.status, database.last_error, database.recreate_requested) == (ResourceStatus.RUNNING, "", False)
    assert exists(name)
    with psycopg.connect(database.connection_url) as connection:
        tables = connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
    assert tables == 0
    services.do_delete_project(Project.objects.get(pk=project.pk))
    converge(database.pk)
    assert not exists(name)


def test_recreate_is_refused_for_a_database_that_is_not_in_error(transactional_db, user):
    project = services.do_create_project(user, name="Fine Data")
    database = converge(Database.objects.get(project=project).pk)
    client = Client()
    client.force_login(user)

    response = client.post(f"/api/projects/{project.pk}/database/recreate")

    assert response.status_code == 400
    assert response.json()["code"] == "ACTION_NOT_ALLOWED"
    assert Database.objects.get(pk=database.pk).recreate_requested is False
    services.do_delete_project(Project.objects.get(pk=project.pk))
    converge(database.pk)


def test_a_vanished_workspace_is_an_error_until_the_user_starts_again_empty(transactional_db, user):
    project = services.do_create_project(user, name="Lost Files")
    Database.objects.filter(project=project).update(status=ResourceStatus.STOPPED)  # not needed here
    sandbox = Sandbox.objects.get(project=project)
    backend = get_sandbox_backend()

    def step_until_settled():
        for _ in range(5):
            reconcile_sandbox(sandbox.pk)
            row = Sandbox.objects.get(pk=sandbox.pk)
            if row.status in (ResourceStatus.RUNNING, ResourceStatus.ERROR):
                return row
        return row

    assert step_until_settled().status == ResourceStatus.RUNNING
    workspace = backend.workspace(build_spec(sandbox))
    (workspace / "work.txt").write_text("a day of work\n")
    shutil.rmtree(workspace)  # removed behind the platform's back
    row = step_until_settled()
    assert row.status == ResourceStatus.ERROR
    assert row.last_error.startswith("The sandbox's workspace is gone, and the files in it")
    assert not workspace.exists()
    assert backend.processes(build_spec(row)) == []  # nothing left running on a deleted home

    client = Client()
    client.force_login(user)
    assert 'id="workspace-recreate"' in client.get(f"/projects/{project.pk}/terminal/").content.decode()
    response = client.post(f"/api/projects/{project.pk}/workspace/recreate")
    assert response.status_code == 200
    row = step_until_settled()
    assert (row.status, row.recreate_requested) == (ResourceStatus.RUNNING, False)
    assert workspace.is_dir() and not (workspace / "work.txt").exists()
    backend.delete(build_spec(row))
