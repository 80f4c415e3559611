"""fullstackagent.inserts: a project's rows in one statement, against PostgreSQL, as Model.save() would
write them one by one."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from databases.models import Database
from fullstackagent.encryption import decrypt
from fullstackagent.inserts import NewId, insert_together
from projects import services
from projects.models import Environment, IdempotencyKey, Project, ResourceEvent
from sandboxes.models import Sandbox

pytestmark = pytest.mark.django_db


def test_rows_referring_to_each_other_are_inserted_in_one_statement(user):
    before = timezone.now()
    project = Project(user=user, name="Shop", k8s_name="shop")
    sandbox = Sandbox(project=project, name="shop-agentruntime-aaaaaa")
    database = Database(project=project, name="shop-agentruntime-bbbbbb")
    token = Environment(project=project, key="TTYD_ACCESS_TOKEN", value="s3cret", category="ttyd", is_secret=True)
    event = ResourceEvent(
        project=project, resource_kind="sandbox", resource_id=NewId(sandbox), resource_name=sandbox.name,
        to_status="CREATING", cause="user",
    )

    with CaptureQueriesContext(connection) as queries:
        insert_together(project, sandbox, database, token, event)

    assert len(queries) == 1
    assert all(row.pk is not None and not row._state.adding for row in (project, sandbox, database, token, event))
    # Foreign keys point at the new rows, and the related instances stay cached (no query to read them).
    assert (sandbox.project_id, database.project_id, token.project_id, event.project_id) == (project.pk,) * 4
    assert event.resource_id == sandbox.pk
    with CaptureQueriesContext(connection) as queries:
        assert sandbox.project is project and token.project is project
    assert len(queries) == 0

    stored = Sandbox.objects.get(pk=sandbox.pk)
    assert (stored.project_id, stored.status, stored.runtime_state, stored.restarts) == (project.pk, "CREATING", {}, 0)
    # auto_now_add and auto_now were filled in by the fields, as save() does.
    assert stored.created >= before and stored.updated >= before
    assert Project.objects.get(pk=project.pk).created == project.created
    # The field encrypted the value at rest, as on save().
    raw = Environment.objects.filter(pk=token.pk).values_list("value", flat=True)
    with connection.cursor() as cursor:
        cursor.execute('SELECT "value" FROM "projects_environment" WHERE "id" = %s', [token.pk])
        at_rest = cursor.fetchone()[0]
    assert at_rest != "s3cret" and decrypt(at_rest) == "s3cret" and list(raw) == ["s3cret"]
    assert ResourceEvent.objects.get(pk=event.pk).resource_id == sandbox.pk


def test_a_failing_constraint_inserts_nothing(user):
    kept = services.do_create_project(user, name="Kept", idempotency_key="key-1")
    project = Project(user=user, name="Second", k8s_name="second")
    sandbox = Sandbox(project=project, name="second-agentruntime-cccccc")
    reused = IdempotencyKey(user=user, key="key-1", project=project)

    with pytest.raises(IntegrityError), transaction.atomic():
        insert_together(project, sandbox, reused)

    assert list(Project.objects.filter(user=user).values_list("pk", flat=True)) == [kept.pk]
    assert not Sandbox.objects.filter(name="second-agentruntime-cccccc").exists()


def test_only_new_rows_referring_to_earlier_ones(user):
    project = Project(user=user, name="Order", k8s_name="order")
    sandbox = Sandbox(project=project, name="order-agentruntime-dddddd")
    with pytest.raises(ValueError, match="refers to a row inserted after it"):
        insert_together(sandbox, project)
    with pytest.raises(ValueError, match="unsaved row outside the group"):
        insert_together(sandbox)
    event = ResourceEvent(project=project, resource_kind="sandbox", resource_id=NewId(sandbox), to_status="CREATING")
    with pytest.raises(ValueError, match="unsaved row outside the group"):
        insert_together(project, event)
    saved = services.do_create_project(user, name="Saved")
    with pytest.raises(ValueError, match="new rows only"):
        insert_together(saved)
    assert not Project.objects.filter(name="Order").exists()


def test_a_created_project_is_what_separate_saves_made(user):
    project = services.do_create_project(user, name="Diary", description="  notes  ", idempotency_key="k")

    assert (project.sandbox.project_id, project.database.project_id) == (project.pk, project.pk)
    stored = Project.objects.get(pk=project.pk)
    assert (stored.name, stored.k8s_name, stored.description, stored.status) == ("Diary", "diary", "notes", "CREATING")
    sandbox, database = Sandbox.objects.get(project=project), Database.objects.get(project=project)
    assert (sandbox.pk, database.pk) == (project.sandbox.pk, project.database.pk)
    assert sandbox.next_check_at is not None and timezone.now() - sandbox.next_check_at < timedelta(seconds=5)
    token = Environment.objects.get(project=project)
    assert (token.key, token.category, token.is_secret, len(token.value)) == ("TTYD_ACCESS_TOKEN", "ttyd", True, 43)
    events = ResourceEvent.objects.filter(project=project).order_by("resource_kind")
    assert [(e.resource_kind, e.resource_id, e.from_status, e.to_status, e.cause) for e in events] == [
        ("database", database.pk, "", "CREATING", "user"),
        ("sandbox", sandbox.pk, "", "CREATING", "user"),
    ]
    assert IdempotencyKey.objects.get(user=user, key="k").project_id == project.pk
