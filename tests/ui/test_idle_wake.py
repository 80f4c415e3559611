"""Issue 16's idle stop end to end: a real Celery worker (its beat's scans, its drift checks) stops
a sandbox nobody uses, the card says why, and opening the project's terminal in Chromium starts it
again and connects."""

import re

import pytest

from fullstackagent.status import ProjectStatus, ResourceStatus, TransitionCause
from fullstackagent.testing.processes import wait_for
from identities.models import UserQuota
from projects import services
from projects.models import Project, ResourceEvent
from sandboxes.backends import get_sandbox_backend
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec
from tests.ui.test_terminal_polish import TERMINAL, _screen_matches


@pytest.mark.browser
def test_an_idle_project_stops_and_opening_its_terminal_starts_it(start_celery_worker, signed_in_page, user):
    # 3 s of idleness, looked at every second, in the worker (where the idle stop runs).
    start_celery_worker(environment={"IDLE_STOP_MINUTES": "0.05", "RECONCILE_DRIFT_CHECK_SECONDS": "1"})
    project = services.do_create_project(user, name="Nap")
    try:
        wait_for(lambda: Project.objects.get(pk=project.pk).status == ProjectStatus.RUNNING, timeout=60, message="running")
        wait_for(lambda: Project.objects.get(pk=project.pk).status == ProjectStatus.STOPPED, timeout=30, message="idle stop")
        page = signed_in_page(user)
        page.goto("/")
        assert page.inner_text(f"#project-{project.pk} .card-note") == (
            "Stopped: idle for 3 s. Opening its terminal starts it again."
        )

        # The user now keeps their sandboxes up, so the woken one stays while the test types.
        UserQuota.objects.create(user=user, idle_stop_minutes=0)
        with page.expect_navigation() as opened:
            page.click(f"#open-{project.pk}")
        # Opening it started it: the sandbox's move to STARTING is the user's, after the idle stop.
        # The page as served says STARTING, or RUNNING when the worker, told at once, was quicker
        # than the page's rendering on a loaded machine.
        served = re.search(r'data-sandbox-status="([A-Z]+)"', opened.value.text()).group(1)
        assert served in (ResourceStatus.STARTING, ResourceStatus.RUNNING), served
        sandbox = Sandbox.objects.get(project=project)
        moves = list(
            ResourceEvent.objects.filter(project=project, resource_kind="sandbox", resource_id=sandbox.pk)
            .order_by("created", "id").values_list("to_status", "cause")
        )
        woken = moves.index((ResourceStatus.STARTING, TransitionCause.USER))
        assert moves[woken - 2:woken] == [
            (ResourceStatus.STOPPING, TransitionCause.IDLE), (ResourceStatus.STOPPED, TransitionCause.RECONCILE),
        ]
        _screen_matches(page, r"[$#]\s*$", timeout_ms=60000)
        page.click(TERMINAL + " .xterm-screen")
        page.keyboard.type("echo woke-$((40+2))")
        page.keyboard.press("Enter")
        _screen_matches(page, r"^woke-42\s*$")
        assert Project.objects.get(pk=project.pk).status == ProjectStatus.RUNNING
        assert page.console_errors == []
    finally:
        get_sandbox_backend().delete(build_spec(Sandbox.objects.get(project=project)))
