"""A variable saved on the Environment page reaches the sandbox: a new terminal sees it.
Headless Chromium against the real platform: its web server, a Celery worker, the local backend's ttyd."""

import re

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


def _wait_for_rows(page, pattern: str, timeout_ms: int = 30000) -> None:
    page.wait_for_function(
        "([selector, pattern]) => { const rows = document.querySelector(selector);"
        " return rows && new RegExp(pattern, 'm').test(rows.innerText.replace(/\\u00a0/g, ' ')); }",
        arg=[TERMINAL_ROWS, pattern],
        timeout=timeout_ms,
    )


def _type(page, command: str) -> None:
    page.click(TERMINAL + " .xterm-screen")
    page.keyboard.type(command)
    page.keyboard.press("Enter")


@pytest.mark.browser
def test_saving_variables_keeps_the_open_terminals_work_and_new_tabs_get_them(signed_in_page, user, running_project):
    services.do_set_variables(running_project, [{"key": "DOOMED", "value": "soon-gone"}])
    wait_for(lambda: _running_with_current_environment(running_project), timeout=60, message="DOOMED to be applied")
    terminal = signed_in_page(user)
    terminal.goto(f"/projects/{running_project.pk}/terminal/")
    _wait_for_rows(terminal, r"[$#]\s*$", timeout_ms=60000)
    _type(terminal, "KEEP=kept-$((40+2)); sleep 900 & echo bg=$!")
    _wait_for_rows(terminal, r"^bg=\d+")
    background = re.search(r"bg=(\d+)", terminal.inner_text(TERMINAL_ROWS)).group(1)

    # In another window, the user adds one variable and deletes another.
    settings_page = signed_in_page(user)
    settings_page.goto(f"/projects/{running_project.pk}/environment/")
    settings_page.locator("[name=new-key-0]").fill("GREETING")
    settings_page.locator("[name=new-value-0]").fill("bonjour")
    settings_page.get_by_role("button", name="Save").click()
    settings_page.get_by_text("Saved GREETING.", exact=False).wait_for()
    settings_page.get_by_role("button", name="Delete DOOMED").click()
    settings_page.locator("#confirm-dialog #confirm-button").click()
    wait_for(lambda: not Environment.objects.filter(project=running_project, key="DOOMED").exists(), message="DOOMED deleted")
    wait_for(lambda: _running_with_current_environment(running_project), timeout=60, message="the change to be applied")

    # The open terminal says what changed and still has its shell variable and its process.
    _wait_for_rows(terminal, r"The environment changed: new variables apply to new shells", timeout_ms=30000)
    # The notice is written by the page, not by tmux, which may redraw over it: the screen is
    # cleared first (tmux repaints it whole) so the shell's answers are read clean.
    _type(terminal, f"clear; echo keep=$KEEP; kill -0 {background} && echo still-running")
    _wait_for_rows(terminal, r"^still-running\s*$")
    assert "keep=kept-42" in terminal.inner_text(TERMINAL_ROWS).replace("\xa0", " ")
    # A new tab has the new variable and not the deleted one.
    terminal.locator("#terminal-add").click()
    _wait_for_rows(terminal, r"[$#]\s*$", timeout_ms=60000)
    _type(terminal, 'echo "greeting=[$GREETING] doomed=[$DOOMED]"')
    _wait_for_rows(terminal, r"^greeting=\[bonjour\] doomed=\[\]\s*$")
    assert terminal.console_errors == []
