"""The terminal page and its status endpoint: owner only, and never the token or the upstream."""

from django.test import Client

from fullstackagent.status import ResourceStatus
from projects.models import Environment
from sandboxes.environment import TERMINAL_TOKEN_KEY
from sandboxes.models import Sandbox


def token_of(project) -> str:
    return Environment.objects.get(project=project, key=TERMINAL_TOKEN_KEY).value


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_owner_gets_the_terminal_page_without_token_or_upstream(running_project, user):
    sandbox = Sandbox.objects.get(project=running_project)

    response = signed_in(user).get(f"/projects/{running_project.pk}/terminal/")

    page = response.content.decode()
    assert response.status_code == 200
    assert f'data-socket-path="/ws/projects/{running_project.pk}/terminal/"' in page
    assert 'data-sandbox-status="RUNNING"' in page
    assert "/static/vendor/%40xterm/xterm/lib/xterm.js" in page
    assert token_of(running_project) not in page
    assert sandbox.ttyd_url == "" or sandbox.ttyd_url not in page
    assert f"127.0.0.1:{sandbox.runtime_state.get('port', 'none')}" not in page


def test_terminal_page_of_another_users_project_is_404(running_project, other_user):
    response = signed_in(other_user).get(f"/projects/{running_project.pk}/terminal/")

    assert response.status_code == 404


def test_terminal_page_sends_anonymous_visitors_to_sign_in(running_project):
    response = Client().get(f"/projects/{running_project.pk}/terminal/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_status_reports_the_sandbox_without_the_token(running_project, user):
    Sandbox.objects.filter(project=running_project).update(
        status=ResourceStatus.STARTING, last_error="waiting for the terminal", public_url="http://127.0.0.1:3000/"
    )

    response = signed_in(user).get(f"/projects/{running_project.pk}/terminal/status")

    assert response.status_code == 200
    assert response.json() == {
        "project": running_project.status,
        "sandbox": "STARTING",
        "message": "waiting for the terminal",
        "app_url": "http://127.0.0.1:3000/",
        "running": False,
    }
    assert token_of(running_project) not in response.content.decode()


def test_status_of_another_users_project_is_404(running_project, other_user):
    assert signed_in(other_user).get(f"/projects/{running_project.pk}/terminal/status").status_code == 404


def test_status_for_anonymous_is_401(running_project):
    assert Client().get(f"/projects/{running_project.pk}/terminal/status").status_code == 401
