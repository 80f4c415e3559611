"""Every API error is JSON {message, code, fields?} with the right status."""

from rest_framework.test import APIClient

from projects import selectors
from projects.models import Project


def test_an_unknown_api_path_is_a_json_404(api):
    response = api.get("/api/no-such-thing/42")

    assert response.status_code == 404
    assert response.json() == {"message": "No API route /api/no-such-thing/42.", "code": "NOT_FOUND"}


def test_malformed_json_is_400_parse_error(api):
    response = api.post("/api/projects", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "PARSE_ERROR"
    assert response.json()["message"].startswith("JSON parse error")
    assert Project.objects.count() == 0


def test_a_wrong_method_is_405(api, project):
    response = api.put(f"/api/projects/{project.pk}/start")

    assert response.status_code == 405
    assert response.json() == {"message": 'Method "PUT" not allowed.', "code": "METHOD_NOT_ALLOWED"}


def test_a_session_write_without_csrf_token_is_403(user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post("/api/projects", {"name": "Blog"}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "PERMISSION_DENIED"
    assert response.json()["message"].startswith("CSRF Failed")
    assert Project.objects.count() == 0


def test_an_unexpected_failure_is_a_json_500_without_internals(api, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("connection string postgresql://secret@db")

    monkeypatch.setattr(selectors, "project_list", broken)

    response = api.get("/api/projects")

    assert response.status_code == 500
    assert response.json() == {
        "message": "Something went wrong on our side. Try again; if it keeps happening, tell the operators.",
        "code": "SERVER_ERROR",
    }
    assert "secret" not in response.content.decode()


def test_an_unknown_api_path_is_a_json_404_for_writes_too(user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.delete("/api/projects/not-a-number")

    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


def test_a_body_in_an_unsupported_media_type_is_415(api):
    response = api.post("/api/projects", "name=Blog", content_type="text/plain")

    assert response.status_code == 415
    assert response.json() == {"message": 'Unsupported media type "text/plain" in request.', "code": "UNSUPPORTED_MEDIA_TYPE"}
    assert Project.objects.count() == 0


def test_the_api_root_lists_where_things_are(api):
    response = api.get("/api/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    assert response.json() == {
        "projects": "http://testserver/api/projects",
        "userConfig": "http://testserver/api/user/config",
        "apiTokens": "http://testserver/api/user/tokens",
        "schema": "http://testserver/api/schema/",
        "docs": "http://testserver/api/docs/",
        "site": "http://testserver/",
    }
    browsable = api.get("/api/", HTTP_ACCEPT="text/html")
    assert browsable.status_code == 200
    assert "FullstackAgent API" in browsable.content.decode()
