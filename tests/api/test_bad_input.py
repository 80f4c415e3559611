"""Issue 14, finding 5: bad input is a 4xx in the API's error shape (or a short page), never a 500.

Each case below was a 500: a body over Django's limit (RequestDataTooBig), JSON nested too deeply
(RecursionError), a NUL character in a filter or a form (PostgreSQL DataError), a filter day in
year 9999 (OverflowError), a password reset the mail server could not send.
"""

import json

import pytest
from django.conf import settings
from django.db import DataError
from django.test import Client

from fullstackagent.devtools import embedded
from projects import selectors
from projects.models import Project

NUL_MESSAGE = "A value in the request contains a NUL character, which no field accepts."


def test_a_json_body_over_the_limit_is_413_in_the_api_shape(api):
    body = json.dumps({"name": "Blog", "description": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})

    response = api.post("/api/projects", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {
        "message": "The request body is larger than this endpoint accepts (2 MiB); nothing was done.",
        "code": "REQUEST_TOO_LARGE",
    }
    assert Project.objects.count() == 0


def test_a_multipart_field_over_the_limit_is_413(api):
    response = api.post(
        "/api/projects", {"name": "Blog", "description": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)},
        format="multipart",
    )

    assert response.status_code == 413
    assert response.json()["code"] == "REQUEST_TOO_LARGE"
    assert Project.objects.count() == 0


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary="])
def test_a_multipart_body_without_a_usable_boundary_is_400_on_the_api_and_the_pages(api, user_client, content_type):
    """Found by the schema test: the middleware that looks for NUL characters in a posted form read
    it first, and Django's parser's error became its bare HTML 400 page under /api/."""
    answer = api.post("/api/user/config?q=x", b"", content_type=content_type)
    page = user_client.post("/projects/new/", b"--x\r\n", content_type=content_type)

    assert answer.status_code == 400
    assert answer.json() == {"message": "The body is not valid multipart form data; nothing was done.", "code": "PARSE_ERROR"}
    assert page.status_code == 400
    assert b"The body is not valid multipart form data" in page.content


def test_json_nested_too_deeply_is_400_parse_error(api):
    response = api.post("/api/projects", "[" * 100_000 + "]" * 100_000, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "message": "JSON parse error - the document is nested too deeply.",
        "code": "PARSE_ERROR",
    }
    assert Project.objects.count() == 0


@pytest.mark.parametrize("path", ["/?q=%00", "/projects/cards/?q=a%00b", "/?created_from=2024-01-01&q=%00"])
def test_a_nul_in_a_page_filter_is_400(user_client, path):
    response = user_client.get(path)

    assert response.status_code == 400
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert NUL_MESSAGE in response.content.decode()


def test_a_nul_in_an_api_filter_is_400_in_the_api_shape(api):
    response = api.get("/api/projects?q=%00")

    assert response.status_code == 400
    assert response.json() == {"message": NUL_MESSAGE, "code": "NUL_CHARACTER"}


def test_a_nul_in_a_project_description_on_the_page_form_is_400_and_creates_nothing(user_client):
    response = user_client.post("/", {"name": "Blog", "description": "boats\x00"})

    assert response.status_code == 400
    assert NUL_MESSAGE in response.content.decode()
    assert Project.objects.count() == 0


def test_a_nul_in_a_form_field_name_is_refused_too(user_client):
    response = user_client.post("/", {"name": "Blog", "x\x00": "1"})

    assert response.status_code == 400
    assert Project.objects.count() == 0


@pytest.mark.parametrize("field", ["created_from", "created_to"])
def test_a_filter_day_in_year_9999_is_400_on_the_api(api, project, field):
    response = api.get(f"/api/projects?{field}=9999-12-31")

    assert response.status_code == 400
    assert response.json() == {
        "message": "Choose a day up to 9998-12-31.",
        "code": "MAX_VALUE",
        "fields": {field: ["Choose a day up to 9998-12-31."]},
    }


def test_a_filter_day_in_year_9999_is_named_on_the_page_and_ignored(user_client, project):
    response = user_client.get("/projects/cards/?created_to=9999-12-31&q=Blog")

    assert response.status_code == 200
    assert "Choose a day up to 9998-12-31." in response.content.decode()
    assert project.name in response.content.decode()  # the valid filter still applies


def test_a_filter_day_at_the_last_allowed_day_works(api, project):
    response = api.get("/api/projects?created_from=1900-01-01&created_to=9998-12-31")

    assert response.status_code == 200
    assert [entry["id"] for entry in response.json()] == [project.pk]


def test_a_data_error_that_still_reaches_postgresql_is_400_not_500(api, user_client, monkeypatch):
    def refuse(*args, **kwargs):
        raise DataError("invalid byte sequence for encoding \"UTF8\": 0x00")

    monkeypatch.setattr(selectors, "project_list", refuse)

    from_api = api.get("/api/projects")
    from_page = user_client.get("/projects/cards/")

    assert from_api.status_code == 400
    assert from_api.json() == {
        "message": "A value cannot be stored: it contains a NUL character or is out of range.",
        "code": "INVALID_INPUT",
    }
    assert from_page.status_code == 400
    assert "A value cannot be stored" in from_page.content.decode()


def test_a_password_reset_the_mail_server_refuses_is_not_a_500(db, settings, make_user):
    # Django's default mail server, localhost:25, refused the connection: here a port nothing listens on.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", embedded.free_port()
    user = make_user("carol")
    user.email = "carol@example.com"
    user.save()
    client = Client()

    unknown = client.post("/accounts/password/reset/", {"email": "nobody@example.com"})
    known = client.post("/accounts/password/reset/", {"email": "carol@example.com"})

    assert unknown.status_code == 302
    assert known.status_code == 302
    assert client.get("/healthz").status_code == 200
