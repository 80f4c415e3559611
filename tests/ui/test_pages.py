"""The HTML pages with Django's test client: ownership, forms, messages, query counts, no secrets."""

import json
import re

import pytest

from identities.models import ApiToken, ConfigKey, UserConfig
from identities.services import set_user_config
from identities.tokens import do_create_api_token
from projects import services
from projects.models import Environment, Project
from sandboxes.environment import TERMINAL_TOKEN_KEY


@pytest.fixture
def project(user):
    return services.do_create_project(user, name="My Blog")


@pytest.fixture
def others_project(other_user):
    return services.do_create_project(other_user, name="Not Yours")


def _variables(project):
    return {row.key: (row.value, row.category, row.is_secret) for row in Environment.objects.filter(project=project)}


def _messages(response):
    return [str(message) for message in response.context["messages"]] if response.context else []


@pytest.mark.parametrize("count", [1, 25])
def test_projects_page_runs_a_constant_number_of_queries(user_client, user, django_assert_num_queries, count):
    for number in range(count):
        services.do_create_project(user, name=f"Project {chr(97 + number % 26)}x")

    # session, user, then the projects joined with their sandboxes and databases
    with django_assert_num_queries(3):
        response = user_client.get("/")

    assert response.status_code == 200
    assert response.content.decode().count('class="card project-card"') == count


def test_cards_fragment_filters_like_the_api(user_client, user):
    services.do_create_project(user, name="Boat Blog")
    services.do_create_project(user, name="Shop", description="boat parts")
    services.do_create_project(user, name="Recipes")

    html = user_client.get("/projects/cards/", {"q": "boat"}).content.decode()

    assert re.findall(r'<h2 class="card-title"><a [^>]+>([^<]+)</a>', html) == ["Shop", "Boat Blog"]


def test_a_bad_date_filter_is_named_not_a_crash(user_client, project):
    response = user_client.get("/projects/cards/", {"created_from": "someday"})

    assert response.status_code == 200
    assert "The date filter is ignored until it is fixed." in response.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/projects/{id}/",
        "/projects/{id}/database/",
        "/projects/{id}/environment/",
        "/projects/{id}/secrets/",
        "/projects/{id}/auth/",
        "/projects/{id}/payment/",
        "/projects/{id}/status-bar/",
    ],
)
def test_another_users_project_pages_are_404(user_client, others_project, path):
    assert user_client.get(path.format(id=others_project.pk)).status_code == 404


@pytest.mark.parametrize("action", ["start", "stop", "delete"])
def test_another_users_project_actions_are_404_and_change_nothing(user_client, others_project, action):
    before = Project.objects.get(pk=others_project.pk).status

    response = user_client.post(f"/projects/{others_project.pk}/{action}/")

    assert response.status_code == 404
    assert Project.objects.get(pk=others_project.pk).status == before


def test_pages_need_sign_in(client, project):
    response = client.get(f"/projects/{project.pk}/database/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_no_page_contains_the_terminal_token(user_client, project):
    token = Environment.objects.get(project=project, key=TERMINAL_TOKEN_KEY).value
    paths = ["/", "/projects/cards/", f"/projects/{project.pk}/status-bar/"] + [
        f"/projects/{project.pk}/{page}/" for page in ("database", "environment", "secrets", "auth", "payment")
    ]

    for path in paths:
        html = user_client.get(path).content.decode()
        assert token not in html, path
        assert TERMINAL_TOKEN_KEY not in html, path


def test_an_htmx_action_answers_the_cards_and_a_toast(user_client, project):
    response = user_client.post(f"/projects/{project.pk}/delete/", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert json.loads(response["HX-Trigger"]) == {"toast": {"message": "Project My Blog is being deleted.", "level": "success"}}
    assert 'data-status="TERMINATING"' in response.content.decode()


def test_a_refused_action_says_why_and_what_to_do(user_client, project):
    response = user_client.post(f"/projects/{project.pk}/start/", HTTP_HX_REQUEST="true")

    assert json.loads(response["HX-Trigger"])["toast"] == {
        "message": "Cannot start a project that is CREATING. Wait for the current step to finish, then try again.",
        "level": "error",
    }


def test_create_without_javascript(user_client, user):
    response = user_client.post("/", {"name": "Plain Form"}, follow=True)

    assert Project.objects.get(user=user).name == "Plain Form"
    assert _messages(response) == ["Project Plain Form is being created; its card turns green when it runs."]


def test_environment_page_saves_new_and_changed_values_only(user_client, project):
    services.do_set_variables(project, [{"key": "NODE_ENV", "value": "development"}, {"key": "A_SECRET", "value": "s", "category": "secret"}])
    node_env = Environment.objects.get(project=project, key="NODE_ENV")

    response = user_client.post(
        f"/projects/{project.pk}/environment/",
        {f"value-{node_env.pk}": "production", "new-key-0": "LOG_LEVEL", "new-value-0": "debug", "new-key-1": "", "new-value-1": ""},
        follow=True,
    )

    assert _messages(response) == ["Saved NODE_ENV, LOG_LEVEL. A running sandbox picks the change up within a few seconds."]
    variables = _variables(project)
    assert variables["NODE_ENV"] == ("production", "general", False)
    assert variables["LOG_LEVEL"] == ("debug", "general", False)
    assert variables["A_SECRET"] == ("s", "secret", True)


@pytest.mark.parametrize(
    "key, error",
    [
        ("DATABASE_URL", "DATABASE_URL is set by the platform and cannot be changed."),
        ("TTYD_ACCESS_TOKEN", "TTYD_ACCESS_TOKEN is set by the platform and cannot be changed."),
        ("9LIVES", "A variable name has letters, digits and underscores, does not start with a digit, and has at most 128 characters."),
    ],
)
def test_environment_page_refuses_a_bad_key_inline_and_saves_nothing(user_client, project, key, error):
    before = _variables(project)

    response = user_client.post(
        f"/projects/{project.pk}/environment/", {"new-key-0": key, "new-value-0": "x", "new-key-1": "OK_KEY", "new-value-1": "1"}
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert error in html
    assert "Nothing was saved: fix the fields marked below." in html
    assert 'value="OK_KEY"' in html  # what the user typed is kept
    assert _variables(project) == before


def test_environment_page_refuses_a_key_that_lives_on_another_page(user_client, project):
    services.do_set_variables(project, [{"key": "GITHUB_CLIENT_ID", "value": "Iv1", "category": "auth"}])

    response = user_client.post(f"/projects/{project.pk}/environment/", {"new-key-0": "GITHUB_CLIENT_ID", "new-value-0": "x"})

    assert "GITHUB_CLIENT_ID is set on the Auth page; change it there." in response.content.decode()
    assert _variables(project)["GITHUB_CLIENT_ID"] == ("Iv1", "auth", False)


def test_secrets_page_never_shows_values_and_keeps_one_left_empty(user_client, project):
    services.do_set_variables(project, [{"key": "API_SECRET", "value": "very-secret-value", "category": "secret"}])
    secret = Environment.objects.get(project=project, key="API_SECRET")

    page = user_client.get(f"/projects/{project.pk}/secrets/").content.decode()
    user_client.post(f"/projects/{project.pk}/secrets/", {f"value-{secret.pk}": "", "new-key-0": "NEW_ONE", "new-value-0": "n"})

    assert "very-secret-value" not in page
    assert _variables(project)["API_SECRET"] == ("very-secret-value", "secret", True)
    assert _variables(project)["NEW_ONE"] == ("n", "secret", True)


def test_delete_variable_from_a_page(user_client, project):
    services.do_set_variables(project, [{"key": "GONE", "value": "1"}, {"key": "KEPT", "value": "2"}])
    gone = Environment.objects.get(project=project, key="GONE")

    response = user_client.post(f"/projects/{project.pk}/variables/{gone.pk}/delete/", follow=True)

    assert _messages(response) == ["Deleted GONE. A running sandbox picks the change up within a few seconds."]
    assert set(_variables(project)) == {TERMINAL_TOKEN_KEY, "KEPT"}


def test_deleting_the_terminal_token_through_the_page_is_404(user_client, project):
    token = Environment.objects.get(project=project, key=TERMINAL_TOKEN_KEY)

    response = user_client.post(f"/projects/{project.pk}/variables/{token.pk}/delete/")

    assert response.status_code == 404
    assert Environment.objects.filter(pk=token.pk).exists()


def test_auth_page_generates_nextauth_secret_on_the_server(user_client, project):
    response = user_client.post(
        f"/projects/{project.pk}/auth/",
        {"GITHUB_CLIENT_ID": "Iv1.abc", "NEXTAUTH_URL": "https://blog.example", "generate": "NEXTAUTH_SECRET"},
        follow=True,
    )

    secret = Environment.objects.get(project=project, key="NEXTAUTH_SECRET")
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", secret.value)
    assert (secret.category, secret.is_secret) == ("auth", True)
    assert _variables(project)["GITHUB_CLIENT_ID"] == ("Iv1.abc", "auth", False)
    assert _messages(response) == ["Generated a new NEXTAUTH_SECRET and saved it. A running sandbox picks the change up within a few seconds."]
    assert secret.value not in response.content.decode()


def test_auth_page_keeps_secrets_left_empty_and_removes_cleared_plain_values(user_client, project):
    services.do_set_variables(
        project,
        [
            {"key": "GITHUB_CLIENT_ID", "value": "Iv1.abc", "category": "auth"},
            {"key": "GITHUB_CLIENT_SECRET", "value": "gh-secret", "category": "auth", "is_secret": True},
        ],
    )

    response = user_client.post(f"/projects/{project.pk}/auth/", {"GITHUB_CLIENT_ID": "", "GITHUB_CLIENT_SECRET": ""}, follow=True)

    variables = _variables(project)
    assert "GITHUB_CLIENT_ID" not in variables
    assert variables["GITHUB_CLIENT_SECRET"] == ("gh-secret", "auth", True)
    assert _messages(response) == ["Removed GITHUB_CLIENT_ID. A running sandbox picks the change up within a few seconds."]


def test_payment_page_saves_its_keys_without_touching_other_sections(user_client, project):
    services.do_set_variables(project, [{"key": "NODE_ENV", "value": "production"}])

    user_client.post(f"/projects/{project.pk}/payment/", {"STRIPE_SECRET_KEY": "sk_test_1", "PAYPAL_CLIENT_ID": "pp-1"})

    variables = _variables(project)
    assert variables["STRIPE_SECRET_KEY"] == ("sk_test_1", "payment", True)
    assert variables["PAYPAL_CLIENT_ID"] == ("pp-1", "payment", False)
    assert variables["NODE_ENV"] == ("production", "general", False)


# --- settings ------------------------------------------------------------------------------------


def test_settings_shows_the_default_system_prompt_then_saves_and_resets(user_client, user):
    page = user_client.get("/settings/").content.decode()
    user_client.post("/settings/system-prompt/", {"system_prompt": "Build it in Go.", "action": "save"})
    saved = UserConfig.objects.get(user=user, key=ConfigKey.SYSTEM_PROMPT).value
    user_client.post("/settings/system-prompt/", {"action": "reset"})

    assert "The PostgreSQL database is ready" in page
    assert saved == "Build it in Go."
    assert not UserConfig.objects.filter(user=user, key=ConfigKey.SYSTEM_PROMPT).exists()


def test_settings_refuses_an_unusable_kubeconfig_and_keeps_the_text(user_client, user):
    response = user_client.post("/settings/kubeconfig/", {"kubeconfig": "clusters: [", "action": "save"})

    html = response.content.decode()
    assert response.status_code == 400
    assert "The kubeconfig is not valid YAML" in html
    assert "clusters: [" in html
    assert not UserConfig.objects.filter(user=user, key=ConfigKey.KUBECONFIG).exists()


def test_settings_anthropic_keeps_the_key_when_left_empty_and_never_shows_it(user_client, user):
    set_user_config(user, ConfigKey.ANTHROPIC_API_KEY, "sk-ant-kept")

    user_client.post("/settings/anthropic/", {"base_url": "https://api.example/v1", "api_key": "", "model": "m1", "small_fast_model": ""})
    page = user_client.get("/settings/?tab=anthropic").content.decode()

    assert UserConfig.objects.get(user=user, key=ConfigKey.ANTHROPIC_API_KEY).value == "sk-ant-kept"
    assert UserConfig.objects.get(user=user, key=ConfigKey.ANTHROPIC_BASE_URL).value == "https://api.example/v1"
    assert "sk-ant-kept" not in page


def test_settings_refuses_a_bad_base_url_inline(user_client, user):
    response = user_client.post("/settings/anthropic/", {"base_url": "not a url", "model": ""})

    assert response.status_code == 400
    assert "Enter an http:// or https:// URL." in response.content.decode()
    assert not UserConfig.objects.filter(user=user).exists()


def test_a_new_api_token_is_shown_once(user_client, user):
    created = user_client.post("/settings/tokens/", {"name": "deploy"}).content.decode()
    clear = re.search(r'<code id="new-token" class="token-value">(fsa_[^<]+)</code>', created).group(1)
    later = user_client.get("/settings/?tab=tokens").content.decode()

    assert ApiToken.objects.get(user=user).prefix == clear[:8]
    assert clear not in later
    assert f"{clear[:8]}…" in later


def test_revoking_another_users_token_is_404(user_client, other_user):
    token, _ = do_create_api_token(other_user, name="theirs")

    response = user_client.post(f"/settings/tokens/{token.pk}/revoke/")

    assert response.status_code == 404
    assert ApiToken.objects.get(pk=token.pk).revoked is None
