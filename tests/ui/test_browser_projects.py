"""The projects page in headless Chromium against the real platform (web server, Celery, local backend)."""

import pytest

from databases.backends import get_database_backend
from databases.models import Database
from databases.reconcile import build_spec as database_spec
from fullstackagent.status import ProjectStatus
from fullstackagent.testing.processes import PlatformServer
from projects import services
from projects.models import Project
from sandboxes.backends import get_sandbox_backend
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec as sandbox_spec


@pytest.fixture
def cleanup_resources():
    """Ends the ttyd/tmux processes and drops the databases the reconcilers made for the test."""
    yield
    for sandbox in Sandbox.objects.all():
        get_sandbox_backend().delete(sandbox_spec(sandbox))
    for database in Database.objects.all():
        get_database_backend().delete(database_spec(database))


@pytest.mark.browser
def test_a_project_created_in_the_dialog_reaches_running_without_a_reload(
    celery_worker, signed_in_page, user, cleanup_resources
):
    page = signed_in_page(user)
    page.goto("/")
    # Proof that the page is never reloaded: a reload would drop this.
    page.evaluate("window.stillTheSamePage = true")

    page.get_by_role("button", name="New project").first.click()
    page.get_by_label("Name").fill("Browser Blog")
    page.get_by_label("Description").fill("made by the browser test")
    page.get_by_role("button", name="Create project").click()

    page.get_by_text("Project Browser Blog is being created").wait_for()
    project = Project.objects.get(user=user)
    card = page.locator(f"#project-{project.pk}")
    card.wait_for()
    assert card.get_attribute("data-status") in {"CREATING", "STARTING", "RUNNING"}
    page.wait_for_selector(f"#project-{project.pk}[data-status=RUNNING]", timeout=60000)
    assert card.locator(".badge").inner_text() == "Running"
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.locator("#new-project-dialog").is_visible() is False
    assert page.console_errors == []


@pytest.mark.browser
def test_the_dialog_explains_a_refused_name_inline_and_creates_nothing(signed_in_page, user):
    page = signed_in_page(user)
    page.goto("/")

    page.get_by_role("button", name="New project").first.click()
    page.get_by_label("Name").fill("blog!")
    page.get_by_role("button", name="Create project").click()

    error = page.locator("#new-project-name-error")
    assert error.inner_text() == "'!' is not allowed: use letters, digits, spaces and hyphens."
    assert page.get_by_label("Name").get_attribute("aria-invalid") == "true"
    assert page.locator("#new-project-dialog").is_visible()
    page.get_by_label("Name").fill("Blog")
    assert error.is_hidden()
    assert Project.objects.count() == 0


@pytest.mark.browser
def test_without_a_kubeconfig_the_dialog_opens_settings_on_the_kubeconfig_tab(
    chromium, browser_session_cookie, user, tmp_path
):
    kubernetes_platform = PlatformServer(tmp_path, name="web-kubernetes", SANDBOX_BACKEND="kubernetes")
    try:
        context = chromium.new_context(base_url=kubernetes_platform.url)
        context.add_cookies([{**browser_session_cookie(user), "url": kubernetes_platform.url}])
        page = context.new_page()
        page.goto("/")
        page.get_by_role("button", name="New project").first.click()
        page.get_by_label("Name").fill("Cluster App")
        page.get_by_role("button", name="Create project").click()

        page.wait_for_url("**/settings/?tab=kubernetes&reason=kubeconfig-missing")
        assert page.locator("#kube-title").inner_text() == "Kubeconfig"
        assert "add your kubeconfig here, then create the project again" in page.locator(".notice-warning").inner_text()
        assert Project.objects.count() == 0
        context.close()
    finally:
        kubernetes_platform.stop()


@pytest.mark.browser
def test_stop_and_delete_ask_then_say_what_happened(signed_in_page, user, set_project_state):
    project = set_project_state(services.do_create_project(user, name="Team Notes"), "RUNNING")
    page = signed_in_page(user)
    page.goto("/")

    page.locator(f"#stop-{project.pk}").click()
    page.get_by_text("Project Team Notes is stopping.").wait_for()
    page.wait_for_selector(f"#project-{project.pk}[data-status=STOPPING]")
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.STOPPING

    page.locator(f"#delete-{project.pk}").click()
    dialog = page.locator("#confirm-dialog")
    assert "Delete Team Notes?" in dialog.inner_text()
    page.keyboard.press("Escape")
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.STOPPING

    page.locator(f"#delete-{project.pk}").click()
    dialog.get_by_role("button", name="Delete project").click()
    page.get_by_text("Project Team Notes is being deleted.").wait_for()
    page.wait_for_selector(f"#project-{project.pk}[data-status=TERMINATING]")
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.TERMINATING
    assert page.console_errors == []


@pytest.mark.browser
def test_a_project_can_be_created_with_the_keyboard_alone(signed_in_page, user):
    page = signed_in_page(user)
    page.goto("/")

    page.focus("#new-project-button")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "new-project-name"
    page.keyboard.type("Keyboard App")
    page.keyboard.press("Enter")

    page.get_by_text("Project Keyboard App is being created").wait_for()
    assert list(Project.objects.filter(user=user).values_list("name", flat=True)) == ["Keyboard App"]
    page.focus("#new-project-button")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    assert page.locator("#new-project-dialog").is_visible() is False
