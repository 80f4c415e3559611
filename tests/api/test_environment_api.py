"""Contract of /api/projects/{id}/environment: grouped list, create one or many, update, delete, reveal."""

import pytest

from projects import services
from projects.models import Environment, EnvironmentCategory
from sandboxes.environment import TERMINAL_TOKEN_KEY

VARIABLE_KEYS = {"id", "key", "value", "category", "isSecret", "createdAt", "updatedAt"}


def _variables(project):
    """key → (value, category, is_secret), the terminal token included: proof of "nothing changed"."""
    return {row.key: (row.value, row.category, row.is_secret) for row in Environment.objects.filter(project=project)}


@pytest.fixture
def variables(project):
    return services.do_set_variables(
        project,
        [
            {"key": "NODE_ENV", "value": "production"},
            {"key": "API_SECRET", "value": "s3cr3t-value", "category": EnvironmentCategory.SECRET},
            {"key": "GITHUB_CLIENT_ID", "value": "Iv1.abc", "category": EnvironmentCategory.AUTH},
            {"key": "STRIPE_SECRET_KEY", "value": "sk_test_1", "category": EnvironmentCategory.PAYMENT, "is_secret": True},
        ],
    )


def test_list_groups_by_category_masks_secrets_and_hides_the_terminal_token(api, project, variables):
    token = Environment.objects.get(project=project, key=TERMINAL_TOKEN_KEY).value

    response = api.get(f"/api/projects/{project.pk}/environment")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"general", "secret", "auth", "payment"}
    assert [(v["key"], v["value"], v["isSecret"]) for v in body["general"]] == [("NODE_ENV", "production", False)]
    assert [(v["key"], v["value"], v["isSecret"]) for v in body["secret"]] == [("API_SECRET", "••••••••", True)]
    assert [(v["key"], v["value"]) for v in body["auth"]] == [("GITHUB_CLIENT_ID", "Iv1.abc")]
    assert [(v["key"], v["value"]) for v in body["payment"]] == [("STRIPE_SECRET_KEY", "••••••••")]
    assert set(body["general"][0]) == VARIABLE_KEYS
    assert token not in response.content.decode()
    assert "s3cr3t-value" not in response.content.decode()
    assert TERMINAL_TOKEN_KEY not in response.content.decode()


def test_create_one_variable(api, project):
    response = api.post(f"/api/projects/{project.pk}/environment", {"key": "LOG_LEVEL", "value": "debug"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Saved LOG_LEVEL; a running sandbox picks it up within a few seconds."
    assert [(v["key"], v["value"], v["category"], v["isSecret"]) for v in body["variables"]] == [
        ("LOG_LEVEL", "debug", "general", False)
    ]
    assert _variables(project)["LOG_LEVEL"] == ("debug", "general", False)


def test_create_several_variables_at_once(api, project):
    payload = {
        "variables": [
            {"key": "A_KEY", "value": "1"},
            {"key": "B_SECRET", "value": "two", "category": "secret"},
            {"key": "NEXTAUTH_URL", "value": "https://blog.example", "category": "auth"},
        ]
    }

    response = api.post(f"/api/projects/{project.pk}/environment", payload, format="json")

    assert response.status_code == 201
    assert [(v["key"], v["value"]) for v in response.json()["variables"]] == [
        ("A_KEY", "1"),
        ("B_SECRET", "••••••••"),
        ("NEXTAUTH_URL", "https://blog.example"),
    ]
    stored = _variables(project)
    assert stored["B_SECRET"] == ("two", "secret", True)
    assert stored["NEXTAUTH_URL"] == ("https://blog.example", "auth", False)


def test_saving_one_section_never_deletes_another(api, project, variables):
    before = _variables(project)

    response = api.post(
        f"/api/projects/{project.pk}/environment",
        {"variables": [{"key": "NEXTAUTH_SECRET", "value": "n3w", "category": "auth", "isSecret": True}]},
        format="json",
    )

    assert response.status_code == 201
    after = _variables(project)
    assert after == {**before, "NEXTAUTH_SECRET": ("n3w", "auth", True)}


@pytest.mark.parametrize("key", [TERMINAL_TOKEN_KEY, "DATABASE_URL", "PROJECT_NAME", "database_url"])
def test_reserved_keys_are_refused_and_nothing_changes(api, project, variables, key):
    before = _variables(project)

    response = api.post(f"/api/projects/{project.pk}/environment", {"key": key, "value": "x"}, format="json")

    assert response.status_code == 400
    message = f"{key} is set by the platform and cannot be changed."
    assert response.json() == {"message": message, "code": "RESERVED_KEY", "fields": {"key": [message]}}
    assert _variables(project) == before


@pytest.mark.parametrize("key", ["1ABC", "WITH-DASH", "has space", "É"])
def test_keys_must_be_environment_variable_names(api, project, key):
    before = _variables(project)

    response = api.post(f"/api/projects/{project.pk}/environment", {"key": key, "value": "x"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_KEY"
    assert list(response.json()["fields"]) == ["key"]
    assert _variables(project) == before


def test_values_have_a_size_limit(api, project):
    response = api.post(
        f"/api/projects/{project.pk}/environment", {"key": "BIG", "value": "x" * (32 * 1024 + 1)}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["fields"] == {"value": ["A variable value has at most 32 KiB."]}
    assert "BIG" not in _variables(project)


def test_a_refused_item_in_a_list_saves_none_of_them(api, project):
    payload = {"variables": [{"key": "GOOD", "value": "1"}, {"key": "PORT", "value": "80"}]}

    response = api.post(f"/api/projects/{project.pk}/environment", payload, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == {"variables[1].key": ["PORT is set by the platform and cannot be changed."]}
    assert "GOOD" not in _variables(project)


def test_the_same_key_twice_in_one_request_is_refused(api, project):
    payload = {"variables": [{"key": "A", "value": "1"}, {"key": "A", "value": "2"}]}

    response = api.post(f"/api/projects/{project.pk}/environment", payload, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "message": "A appears twice.",
        "code": "DUPLICATE_KEY",
        "fields": {"variables[1].key": ["A appears twice."]},
    }


def test_the_terminal_category_cannot_be_written(api, project):
    response = api.post(
        f"/api/projects/{project.pk}/environment", {"key": "MINE", "value": "1", "category": "ttyd"}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["category"]
    assert "MINE" not in _variables(project)


def test_update_changes_value_and_name(api, project, variables):
    variable = Environment.objects.get(project=project, key="NODE_ENV")

    response = api.put(
        f"/api/projects/{project.pk}/environment/{variable.pk}", {"key": "APP_ENV", "value": "staging"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["message"] == "Saved APP_ENV."
    assert response.json()["variable"]["key"] == "APP_ENV"
    stored = _variables(project)
    assert stored["APP_ENV"] == ("staging", "general", False)
    assert "NODE_ENV" not in stored


def test_update_onto_an_existing_name_is_refused(api, project, variables):
    variable = Environment.objects.get(project=project, key="NODE_ENV")
    before = _variables(project)

    response = api.put(
        f"/api/projects/{project.pk}/environment/{variable.pk}", {"key": "API_SECRET", "value": "x"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["fields"] == {"key": ["The project already has a variable API_SECRET."]}
    assert response.json()["code"] == "DUPLICATE_KEY"
    assert _variables(project) == before


def test_update_needs_a_value(api, project, variables):
    variable = Environment.objects.get(project=project, key="NODE_ENV")

    response = api.put(f"/api/projects/{project.pk}/environment/{variable.pk}", {"key": "X"}, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == {"value": ["This field is required."]}


def test_the_terminal_token_row_is_invisible_to_update_delete_and_reveal(api, project):
    row = Environment.objects.get(project=project, key=TERMINAL_TOKEN_KEY)
    before = _variables(project)
    url = f"/api/projects/{project.pk}/environment/{row.pk}"

    responses = [
        api.put(url, {"value": "mine"}, format="json"),
        api.delete(url),
        api.post(f"{url}/reveal"),
    ]

    assert [response.status_code for response in responses] == [404, 404, 404]
    assert _variables(project) == before


def test_delete_removes_one_variable(api, project, variables):
    variable = Environment.objects.get(project=project, key="NODE_ENV")
    before = _variables(project)

    response = api.delete(f"/api/projects/{project.pk}/environment/{variable.pk}")

    assert response.status_code == 200
    assert response.json() == {"message": "Deleted NODE_ENV."}
    before.pop("NODE_ENV")
    assert _variables(project) == before


def test_reveal_shows_a_secret_value_to_its_owner(api, project, variables):
    variable = Environment.objects.get(project=project, key="API_SECRET")

    response = api.post(f"/api/projects/{project.pk}/environment/{variable.pk}/reveal")

    assert response.status_code == 200
    assert (response.json()["key"], response.json()["value"]) == ("API_SECRET", "s3cr3t-value")


def test_another_users_environment_is_404_with_nothing_changed(api, others_project):
    services.do_set_variables(others_project, [{"key": "THEIRS", "value": "hidden", "category": "secret"}])
    variable = Environment.objects.get(project=others_project, key="THEIRS")
    before = _variables(others_project)
    base = f"/api/projects/{others_project.pk}/environment"

    responses = [
        api.get(base),
        api.post(base, {"key": "MINE", "value": "1"}, format="json"),
        api.put(f"{base}/{variable.pk}", {"value": "changed"}, format="json"),
        api.delete(f"{base}/{variable.pk}"),
        api.post(f"{base}/{variable.pk}/reveal"),
    ]

    assert [response.status_code for response in responses] == [404] * 5
    assert all(response.json()["code"] == "NOT_FOUND" for response in responses)
    assert "hidden" not in "".join(response.content.decode() for response in responses)
    assert _variables(others_project) == before


def test_a_variable_of_another_project_is_404_through_my_project(api, project, others_project):
    services.do_set_variables(others_project, [{"key": "THEIRS", "value": "1"}])
    variable = Environment.objects.get(project=others_project, key="THEIRS")

    response = api.put(f"/api/projects/{project.pk}/environment/{variable.pk}", {"value": "2"}, format="json")

    assert response.status_code == 404
    assert Environment.objects.get(pk=variable.pk).value == "1"


def test_environment_routes_need_authentication(anonymous_api, project):
    before = _variables(project)
    base = f"/api/projects/{project.pk}/environment"

    responses = [anonymous_api.get(base), anonymous_api.post(base, {"key": "A", "value": "1"}, format="json")]

    assert [response.status_code for response in responses] == [401, 401]
    assert _variables(project) == before
