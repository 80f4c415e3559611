"""A variable saved on the Environment page reaches the sandbox: a new terminal sees it.
Headless Chromium against the real platform: daphne, a Celery worker, the local backend's ttyd."""

import pytest

from databases.backends import get_database_backend
from databases.models import Database
from databases.reconcile import build_spec as database_spec
from fullstackagent.status import ProjectStatus, ResourceStatus
from fullstackagent.testing.processes import wait_for
from projects import services
from projects.models import Environment, Project
from sandboxes.backends import get_sandbox_backend
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec as sandbox_spec

TERMINAL = "#terminal-panes .terminal-pane.active"
TERMINAL_ROWS = TERMINAL + " .xterm-rows"


def _running_with_current_environment(project) -> bool:
    """RUNNING, and the sandbox runs with the environment the database now describes."""
    sandbox = Sandbox.objects.get(project=project)
    return (
        Project.objects.get(pk=project.pk).status == ProjectStatus.RUNNING
        and sandbox.status == ResourceStatus.RUNNING
        and sandbox.applied_environment_hash == sandbox_spec(sandbox).environment_hash
    )


@pytest.fixture
def running_project(celery_worker, user):
    project = services.do_create_project(user, name="Env Test")
    wait_for(lambda: _running_with_current_environment(project), timeout=60, message="the project to run")
    yield project
    for sandbox in Sandbox.objects.filter(project=project):
        get_sandbox_backend().delete(sandbox_spec(sandbox))
    for database in Database.objects.filter(project=project):
        get_database_backend().delete(database_spec(database))


@pytest.mark.browser
def test_a_variable_set_on_the_environment_page_is_in_a_new_terminal(signed_in_page, user, running_project):
    page = signed_in_page(user)
    page.goto(f"/projects/{running_project.pk}/environment/")

    page.locator("[name=new-key-0]").fill("GREETING")
    page.locator("[name=new-value-0]").fill("hello from the environment page")
    page.get_by_role("button", name="Save").click()

    page.get_by_text("Saved GREETING. A running sandbox picks the change up within a few seconds.").wait_for()
    assert Environment.objects.get(project=running_project, key="GREETING").value == "hello from the environment page"
    assert page.locator("#variable-GREETING input").input_value() == "hello from the environment page"
    wait_for(
        lambda: _running_with_current_environment(running_project), timeout=60, message="the environment to be applied"
    )

    page.goto(f"/projects/{running_project.pk}/terminal/")
    page.locator("#terminal-add").click()
    page.wait_for_selector(TERMINAL_ROWS)
    # Type once the shell's prompt is drawn: keys sent before tmux has attached can be lost.
    page.wait_for_function(
        "selector => { const rows = document.querySelector(selector);"
        " return rows && /[$#]\\s*$/m.test(rows.innerText.replace(/\\u00a0/g, ' ')); }",
        arg=TERMINAL_ROWS,
        timeout=60000,
    )
    page.click(TERMINAL + " .xterm-screen")
    page.keyboard.type('echo "[$GREETING]"')
    page.keyboard.press("Enter")
    page.wait_for_function(
        "selector => { const rows = document.querySelector(selector);"
        " return rows && rows.innerText.replace(/\\u00a0/g, ' ').includes('[hello from the environment page]'); }",
        arg=TERMINAL_ROWS,
        timeout=30000,
    )
