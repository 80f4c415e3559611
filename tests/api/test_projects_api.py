"""Contract of /api/projects: list, create, detail, start/stop/delete, DELETE."""

import json
from datetime import datetime, timezone

import pytest

from databases.models import Database
from fullstackagent.status import ProjectStatus, ResourceStatus
from identities.models import ConfigKey
from identities.services import set_user_config
from projects import services
from projects.models import Environment, Project
from sandboxes.environment import TERMINAL_TOKEN_KEY
from sandboxes.models import Sandbox

PROJECT_KEYS = {
    "id",
    "name",
    "description",
    "status",
    "createdAt",
    "updatedAt",
    "allowedActions",
    "publicUrl",
    "sandbox",
    "database",
}


def _set_resources(project, status, public_url=""):
    Sandbox.objects.filter(project=project).update(status=status, public_url=public_url)
    Database.objects.filter(project=project).update(status=status)
    services.refresh_project_status(project.pk)
    project.refresh_from_db()
    return project


def _snapshot(project):
    """Everything an action could change, to prove a refused one changed nothing."""
    project.refresh_from_db()
    return (
        project.status,
        project.updated,
        list(Sandbox.objects.filter(project=project).values_list("status", "next_check_at")),
        list(Database.objects.filter(project=project).values_list("status", "next_check_at")),
    )


def test_list_returns_the_users_visible_projects_with_their_resources(api, project, others_project, user):
    gone = services.do_create_project(user, name="Gone")
    _set_resources(gone, ResourceStatus.TERMINATED)
    _set_resources(project, ResourceStatus.RUNNING, public_url="http://127.0.0.1:41000/")

    response = api.get("/api/projects")

    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body] == [project.pk]
    item = body[0]
    assert set(item) == PROJECT_KEYS
    assert (item["name"], item["description"], item["status"]) == ("My Blog", "A blog about boats", "RUNNING")
    assert item["allowedActions"] == ["delete", "restart", "stop"]
    assert item["publicUrl"] == "http://127.0.0.1:41000/"
    sandbox = Sandbox.objects.get(project=project)
    assert item["sandbox"] == {
        "id": sandbox.pk,
        "name": sandbox.name,
        "status": "RUNNING",
        "lastError": "",
        "publicUrl": "http://127.0.0.1:41000/",
        "updatedAt": item["sandbox"]["updatedAt"],
    }
    assert set(item["database"]) == {"id", "name", "status", "lastError", "updatedAt"}


def test_list_is_newest_first(api, user):
    first = services.do_create_project(user, name="First")
    second = services.do_create_project(user, name="Second")

    assert [item["id"] for item in api.get("/api/projects").json()] == [second.pk, first.pk]


def test_list_filters_by_keyword_in_name_or_description(api, user, project):
    services.do_create_project(user, name="Shop", description="sells sails")
    services.do_create_project(user, name="Other")

    by_name = api.get("/api/projects", {"q": "blog"}).json()
    by_description = api.get("/api/projects", {"q": "SAILS"}).json()
    nothing = api.get("/api/projects", {"q": "zebra"}).json()

    assert [item["name"] for item in by_name] == ["My Blog"]
    assert [item["name"] for item in by_description] == ["Shop"]
    assert nothing == []


def test_list_filters_by_creation_days_both_included(api, user):
    names = {"March": datetime(2025, 3, 1, 23, 59, tzinfo=timezone.utc), "April": datetime(2025, 4, 2, 0, 0, tzinfo=timezone.utc)}
    for name, created in names.items():
        project = services.do_create_project(user, name=name)
        Project.objects.filter(pk=project.pk).update(created=created)

    march = api.get("/api/projects", {"created_from": "2025-03-01", "created_to": "2025-03-01"}).json()
    from_april = api.get("/api/projects", {"created_from": "2025-04-02"}).json()
    until_april_first = api.get("/api/projects", {"created_to": "2025-04-01"}).json()

    assert [item["name"] for item in march] == ["March"]
    assert [item["name"] for item in from_april] == ["April"]
    assert [item["name"] for item in until_april_first] == ["March"]


@pytest.mark.parametrize(
    "query, field, code",
    [
        ({"created_from": "yesterday"}, "created_from", "INVALID"),
        ({"created_to": "2025-13-01"}, "created_to", "INVALID"),
        ({"created_from": "2025-05-02", "created_to": "2025-05-01"}, "created_to", "INVALID_RANGE"),
    ],
)
def test_list_refuses_bad_dates_naming_the_field(api, project, query, field, code):
    response = api.get("/api/projects", query)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code
    assert list(body["fields"]) == [field]
    assert body["message"] == body["fields"][field][0]


def test_anonymous_request_is_401_with_a_bearer_challenge(anonymous_api, project):
    response = anonymous_api.get("/api/projects")

    assert response.status_code == 401
    assert response.json() == {"message": "Authentication credentials were not provided.", "code": "NOT_AUTHENTICATED"}
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_create_answers_201_with_the_new_project(api, user):
    response = api.post("/api/projects", {"name": "  Recipe Book ", "description": "cakes"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == PROJECT_KEYS
    project = Project.objects.get(user=user)
    assert (body["id"], body["name"], body["description"], body["status"]) == (project.pk, "Recipe Book", "cakes", "CREATING")
    assert body["allowedActions"] == ["delete", "stop"]  # stop while creating: issue 13
    assert body["sandbox"]["status"] == body["database"]["status"] == "CREATING"


@pytest.mark.parametrize(
    "payload, code, message",
    [
        ({"name": "1 blog"}, "INVALID_NAME", "A project name starts and ends with a letter."),
        ({"name": "blog!"}, "INVALID_NAME", "'!' is not allowed: use letters, digits, spaces and hyphens."),
        ({"name": "x" * 65}, "MAX_LENGTH", "Ensure this field has no more than 64 characters."),
        ({}, "REQUIRED", "This field is required."),
    ],
)
def test_create_refuses_a_bad_name_naming_the_field(api, user, payload, code, message):
    response = api.post("/api/projects", payload, format="json")

    assert response.status_code == 400
    assert response.json() == {"message": message, "code": code, "fields": {"name": [message]}}
    assert Project.objects.count() == 0


def test_create_without_kubeconfig_on_kubernetes_is_kubeconfig_missing(api, user, settings):
    settings.SANDBOX_BACKEND = "kubernetes"

    response = api.post("/api/projects", {"name": "Blog"}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "message": "Add your kubeconfig in settings before creating a project.",
        "code": "KUBECONFIG_MISSING",
    }
    assert Project.objects.count() == Sandbox.objects.count() == 0


def test_create_with_kubeconfig_on_kubernetes_is_accepted(api, user, settings):
    settings.SANDBOX_BACKEND = "kubernetes"
    set_user_config(user, ConfigKey.KUBECONFIG, "apiVersion: v1\nkind: Config\n")

    response = api.post("/api/projects", {"name": "Blog"}, format="json")

    assert response.status_code == 201
    assert Project.objects.filter(user=user, name="Blog").count() == 1


def test_detail_shows_status_and_never_the_terminal_token(api, project):
    token = Environment.objects.get(project=project, key=TERMINAL_TOKEN_KEY).value
    Sandbox.objects.filter(project=project).update(ttyd_url="ws://127.0.0.1:7681/ws")

    response = api.get(f"/api/projects/{project.pk}")

    assert response.status_code == 200
    assert set(response.json()) == PROJECT_KEYS
    text = response.content.decode()
    assert token not in text
    assert TERMINAL_TOKEN_KEY not in text
    assert "7681" not in text


def test_detail_of_another_users_project_is_404(api, others_project):
    response = api.get(f"/api/projects/{others_project.pk}")

    assert response.status_code == 404
    assert response.json() == {"message": "Not found.", "code": "NOT_FOUND"}


def test_detail_of_a_terminated_project_is_404(api, project):
    _set_resources(project, ResourceStatus.TERMINATED)

    assert api.get(f"/api/projects/{project.pk}").status_code == 404


@pytest.mark.parametrize(
    "action, start_status, expected_status, message",
    [
        ("stop", ResourceStatus.RUNNING, "STOPPING", "Project My Blog is stopping."),
        ("start", ResourceStatus.STOPPED, "STARTING", "Project My Blog is starting."),
        ("delete", ResourceStatus.RUNNING, "TERMINATING", "Project My Blog is being deleted."),
    ],
)
def test_actions_answer_message_and_project_state(api, project, action, start_status, expected_status, message):
    _set_resources(project, start_status)

    response = api.post(f"/api/projects/{project.pk}/{action}")

    assert response.status_code == 200
    project.refresh_from_db()
    assert project.status == expected_status
    assert response.json() == {
        "message": message,
        "project": {"id": project.pk, "status": expected_status, "updatedAt": response.json()["project"]["updatedAt"]},
    }
    assert set(Sandbox.objects.filter(project=project).values_list("status", flat=True)) == {expected_status}


def test_http_delete_deletes_the_project(api, project):
    _set_resources(project, ResourceStatus.STOPPED)

    response = api.delete(f"/api/projects/{project.pk}")

    assert response.status_code == 200
    assert response.json()["message"] == "Project My Blog is being deleted."
    assert response.json()["project"]["status"] == "TERMINATING"
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.TERMINATING


def test_action_not_allowed_is_400_with_the_reason_and_changes_nothing(api, project):
    _set_resources(project, ResourceStatus.RUNNING)
    before = _snapshot(project)

    response = api.post(f"/api/projects/{project.pk}/start")

    assert response.status_code == 400
    assert response.json() == {"message": "Cannot start a project that is RUNNING.", "code": "ACTION_NOT_ALLOWED"}
    assert _snapshot(project) == before


@pytest.mark.parametrize(
    "method, suffix", [("post", "/start"), ("post", "/stop"), ("post", "/delete"), ("delete", "")]
)
def test_actions_on_another_users_project_are_404_and_change_nothing(api, others_project, method, suffix):
    _set_resources(others_project, ResourceStatus.RUNNING)
    Sandbox.objects.filter(project=others_project).update(status=ResourceStatus.RUNNING)
    before = _snapshot(others_project)

    response = getattr(api, method)(f"/api/projects/{others_project.pk}{suffix}")

    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert _snapshot(others_project) == before


@pytest.mark.parametrize("method, suffix", [("get", ""), ("post", "/start"), ("delete", "")])
def test_project_routes_need_authentication(anonymous_api, project, method, suffix):
    before = _snapshot(project)

    response = getattr(anonymous_api, method)(f"/api/projects/{project.pk}{suffix}")

    assert response.status_code == 401
    assert response.json()["code"] == "NOT_AUTHENTICATED"
    assert _snapshot(project) == before


def test_create_needs_authentication(anonymous_api):
    response = anonymous_api.post("/api/projects", json.dumps({"name": "Blog"}), content_type="application/json")

    assert response.status_code == 401
    assert Project.objects.count() == 0
