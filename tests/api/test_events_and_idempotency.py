"""Issue 13: the history of a project's resources in the API and on its page; creates that tell
the truth (a publish failure after commit is not a 500) and an Idempotency-Key for retried creates."""

import json
import urllib.request

import pytest

from databases.models import Database
from fullstackagent.status import ResourceStatus
from fullstackagent.testing.faults import PrivateRedis
from fullstackagent.testing.processes import PlatformServer, wait_for
from identities.tokens import do_create_api_token
from projects.models import IdempotencyKey, Project
from projects.tasks import reconcile_database, reconcile_sandbox
from sandboxes.backends.local import marked_processes
from sandboxes.models import Sandbox


def step_until(task, model, pk, status):
    def reached():
        task(pk)
        return model.objects.get(pk=pk).status == status

    wait_for(reached, interval=0.1, message=f"{model.__name__} {pk} to be {status}")


def converge(project_id, status):
    step_until(reconcile_database, Database, Database.objects.get(project_id=project_id).pk, status)
    step_until(reconcile_sandbox, Sandbox, Sandbox.objects.get(project_id=project_id).pk, status)


@pytest.mark.django_db(transaction=True)
def test_the_history_of_create_stop_start_delete(api, user_client):
    created = api.post("/api/projects", {"name": "Diary"}, format="json").json()
    project_id = created["id"]
    converge(project_id, ResourceStatus.RUNNING)
    for action, status in (("stop", "STOPPED"), ("start", "RUNNING"), ("delete", "TERMINATED")):
        assert api.post(f"/api/projects/{project_id}/{action}").status_code == 200
        converge(project_id, status)

    events = api.get(f"/api/projects/{project_id}/events").json()

    sandbox = [
        (event["fromStatus"], event["toStatus"], event["cause"])
        for event in reversed(events)
        if event["resourceKind"] == "sandbox"
    ]
    # The local backend may report a new terminal running on its first look or one poll later.
    booting = [("CREATING", "RUNNING", "reconcile")] if ("CREATING", "RUNNING", "reconcile") in sandbox else [
        ("CREATING", "STARTING", "reconcile"), ("STARTING", "RUNNING", "reconcile")
    ]
    assert sandbox == [
        ("", "CREATING", "user"),
        *booting,
        ("RUNNING", "STOPPING", "user"),
        ("STOPPING", "STOPPED", "reconcile"),
        ("STOPPED", "STARTING", "user"),
        ("STARTING", "RUNNING", "reconcile"),
        ("RUNNING", "TERMINATING", "user"),
        ("TERMINATING", "TERMINATED", "reconcile"),
    ]
    database = [(e["fromStatus"], e["toStatus"]) for e in reversed(events) if e["resourceKind"] == "database"]
    assert database[0] == ("", "CREATING") and database[-1] == ("TERMINATING", "TERMINATED")
    assert set(events[0]) == {
        "id", "resourceKind", "resourceId", "resourceName", "fromStatus", "toStatus", "reason", "cause", "createdAt"
    }
    assert marked_processes(Sandbox.objects.get(project_id=project_id).name) == []


@pytest.mark.django_db(transaction=True)
def test_the_history_page_shows_why(user, user_client, api, monkeypatch):
    from fullstackagent.backends import PermanentError
    from sandboxes.backends.local import LocalSandboxBackend

    project_id = api.post("/api/projects", {"name": "Why Error"}, format="json").json()["id"]
    step_until(reconcile_database, Database, Database.objects.get(project_id=project_id).pk, ResourceStatus.RUNNING)

    def refuse(self, spec):
        raise PermanentError("The cluster refused the sandbox: quota exceeded.")

    monkeypatch.setattr(LocalSandboxBackend, "create", refuse)
    reconcile_sandbox(Sandbox.objects.get(project_id=project_id).pk)

    page = user_client.get(f"/projects/{project_id}/history/").content.decode()
    assert "CREATING → ERROR" in page
    assert "The cluster refused the sandbox: quota exceeded." in page
    assert 'data-restarts="Sandbox">0<' in page
    assert user_client.get(f"/projects/{project_id}/history/").status_code == 200


def test_events_of_another_users_project_are_404(other_api, project):
    assert other_api.get(f"/api/projects/{project.pk}/events").status_code == 404


def test_a_create_retried_with_the_same_idempotency_key_makes_one_project(api, user):
    first = api.post("/api/projects", {"name": "Once"}, format="json", HTTP_IDEMPOTENCY_KEY="8c1f-retry")
    again = api.post("/api/projects", {"name": "Once"}, format="json", HTTP_IDEMPOTENCY_KEY="8c1f-retry")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert (first.get("Idempotent-Replayed"), again["Idempotent-Replayed"]) == (None, "true")
    assert Project.objects.filter(user=user).count() == 1
    assert (Sandbox.objects.count(), Database.objects.count()) == (1, 1)
    # Another key (or none) is another create.
    assert api.post("/api/projects", {"name": "Once"}, format="json", HTTP_IDEMPOTENCY_KEY="other").status_code == 201
    assert api.post("/api/projects", {"name": "Once"}, format="json").status_code == 201
    assert Project.objects.filter(user=user).count() == 3


def test_an_idempotency_key_reused_for_another_create_is_refused(api, user):
    api.post("/api/projects", {"name": "First"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    response = api.post("/api/projects", {"name": "Second"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert response.status_code == 400
    assert response.json() == {"message": "This Idempotency-Key was used for another create.", "code": "IDEMPOTENCY_KEY_REUSED"}
    assert list(Project.objects.filter(user=user).values_list("name", flat=True)) == ["First"]


def test_idempotency_keys_are_per_user(api, other_api, user, other_user):
    mine = api.post("/api/projects", {"name": "Shared Key"}, format="json", HTTP_IDEMPOTENCY_KEY="same")
    theirs = other_api.post("/api/projects", {"name": "Shared Key"}, format="json", HTTP_IDEMPOTENCY_KEY="same")

    assert mine.json()["id"] != theirs.json()["id"]
    assert IdempotencyKey.objects.count() == 2


def test_the_schema_documents_the_idempotency_key_and_the_events(client):
    schema = client.get("/api/schema/?format=json").json()
    create = schema["paths"]["/api/projects"]["post"]
    assert [p["name"] for p in create["parameters"] if p["in"] == "header"] == ["Idempotency-Key"]
    assert "/api/projects/{project_id}/events" in schema["paths"]


def _post(url, token, body, key):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Idempotency-Key": key},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers.get("Idempotent-Replayed")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), None


@pytest.mark.django_db(transaction=True)
def test_a_create_with_the_broker_down_is_committed_answered_201_and_retried_once(user, tmp_path):
    """Redis stopped: the publish after commit fails. The answer says what happened (201, the
    project exists and the scan will queue it); the client's retry with its key makes no second one."""
    redis = PrivateRedis(tmp_path / "redis")
    server = PlatformServer(tmp_path, REDIS_URL=redis.url)
    try:
        _, token = do_create_api_token(user, name="chaos")
        redis.stop()
        status, body, replayed = _post(f"{server.url}/api/projects", token, {"name": "Blip"}, "blip-1")
        assert (status, body["status"], replayed) == (201, "CREATING", None), body
        assert "the scan will pick them up" in server.output()
        redis.start()
        status, again, replayed = _post(f"{server.url}/api/projects", token, {"name": "Blip"}, "blip-1")
        assert (status, again["id"], replayed) == (201, body["id"], "true")
        assert Project.objects.filter(user=user).count() == 1
        # The committed rows are due: the beat's scan will queue them.
        assert Sandbox.objects.get(project_id=body["id"]).next_check_at is not None
    finally:
        server.stop()
        redis.stop()
        print(server.output()[-4000:])
