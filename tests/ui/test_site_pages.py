"""The site's own 404 and 500 pages: never Django's debug pages (which list every route, or settings)."""

from unittest import mock

import pytest
from django.test import Client, override_settings

from projects import services


@pytest.mark.parametrize("path", ["/projects/987654/terminal/", "/no/such/page/", "/projects/987654/database/"])
def test_unknown_pages_get_the_sites_own_404(user_client, path, settings):
    settings.DEBUG = True  # as with make run

    response = user_client.get(path)

    assert response.status_code == 404
    body = response.content.decode()
    assert 'id="not-found"' in body
    assert "Using the URLconf" not in body and "urlpatterns" not in body


def test_another_users_project_is_the_same_404(user_client, other_user, settings):
    settings.DEBUG = True
    theirs = services.do_create_project(other_user, name="Not Mine")

    response = user_client.get(f"/projects/{theirs.pk}/terminal/")

    assert response.status_code == 404
    assert 'id="not-found"' in response.content.decode()
    assert "Not Mine" not in response.content.decode()


def test_api_paths_keep_the_json_404(user_client):
    response = user_client.get("/api/no-such-route")

    assert response.status_code == 404
    assert response.json() == {"message": "No API route /api/no-such-route.", "code": "NOT_FOUND"}


def test_a_server_error_gets_the_sites_own_page(user):
    @override_settings(DEBUG=False)
    def broken():
        client = Client(raise_request_exception=False)
        client.force_login(user)
        with mock.patch("projects.views.selectors.owned_project", side_effect=RuntimeError("boom")):
            return client.get("/projects/1/database/")

    response = broken()

    assert response.status_code == 500
    body = response.content.decode()
    assert 'id="server-error"' in body
    assert "boom" not in body and "Traceback" not in body
