"""Every API error is JSON {message, code, fields?} with the right status."""

import pytest
from rest_framework.test import APIClient

from projects import selectors
from projects.models import Project


def test_an_unknown_api_path_is_a_json_404(api):
    response = api.get("/api/no-such-thing/42")

    assert response.status_code == 404
    assert response.json() == {"message": "No API route /api/no-such-thing/42.", "code": "NOT_FOUND"}


def test_api_paths_are_never_redirected_to_a_slash_while_pages_are(api, monkeypatch):
    """A 404 under /api/ is resolved once (no look for ``<path>/``); a page's path without its
    slash is sent to the page (site_pages.unknown_path), which APPEND_SLASH did not do past the
    catch-all routes; an unknown page path stays a 404, and a POST is never redirected."""
    from django.urls import resolvers

    resolved = []
    real_resolve = resolvers.URLResolver.resolve

    def counting_resolve(self, path):
        if self.pattern.regex.pattern == "^/":  # the root resolver: one call per resolution
            resolved.append(path)
        return real_resolve(self, path)

    monkeypatch.setattr(resolvers.URLResolver, "resolve", counting_resolve)

    api_answer = api.get("/api/docs")
    api_resolutions, resolved[:] = list(resolved), []
    page_answer = api.get("/accounts/login?next=/settings/")
    unknown_page = api.get("/no-such-page")
    posted = api.post("/accounts/login", {})

    assert api_answer.status_code == 404
    assert api_answer.json() == {"message": "No API route /api/docs.", "code": "NOT_FOUND"}
    assert api_resolutions == ["/api/docs"]
    assert page_answer.status_code == 301
    assert page_answer["Location"] == "/accounts/login/?next=/settings/"
    assert unknown_page.status_code == 404
    assert b"<html" in unknown_page.content.lower()
    assert posted.status_code == 404


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


@pytest.mark.parametrize("accept", ["l", "image/png", "text/csv;q=1, application/xml"])
def test_an_accept_header_nothing_satisfies_gets_json_not_406(api, anonymous_api, accept):
    created = api.post("/api/projects", {"name": "Blog"}, format="json", HTTP_ACCEPT=accept)
    listed = api.get("/api/projects", HTTP_ACCEPT=accept)
    refused = anonymous_api.get("/api/projects", HTTP_ACCEPT=accept)

    assert created.status_code == 201 and created["Content-Type"] == "application/json"
    assert created.json()["name"] == "Blog"
    assert listed.status_code == 200 and [p["name"] for p in listed.json()] == ["Blog"]
    assert refused.status_code == 401 and refused.json()["code"] == "NOT_AUTHENTICATED"
    # What can be had is still chosen: the browsable API for a browser.
    assert "text/html" in api.get("/api/projects", HTTP_ACCEPT="text/html")["Content-Type"]
