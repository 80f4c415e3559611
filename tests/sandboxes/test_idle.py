"""Issue 16 §2, the idle stop, stepped in-process against the real local backend (bubblewrap),
PostgreSQL and ttyd: an idle sandbox stops with its project after a short IDLE_STOP_MINUTES; one
whose processes work (a CPU loop, as an agent at work) or run under keep-awake does not; terminal
traffic through the relay keeps it up; a user's 0 means never; opening the terminal page of the
idle-stopped project starts it; the card and the API say why it stopped."""

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from databases.models import Database
from fullstackagent.status import ProjectStatus, ResourceStatus, TransitionCause
from identities.models import UserQuota
from projects import services
from projects.models import Project, ResourceEvent
from projects.tasks import reconcile_database, reconcile_sandbox
from sandboxes import activity
from sandboxes.backends import get_sandbox_backend
from sandboxes.backends import local
from sandboxes.backends.local import marked_processes
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec
from tests.sandboxes.test_reconcile_semantics import running_project, step_until
from tests.terminal.conftest import PROMPT, read_until, run, session_cookie, shell, terminal_communicator

pytestmark = pytest.mark.django_db(transaction=True)

# 4 s: long enough for two CPU looks (at least 1 s apart here, BUSY_WINDOW) inside it, with room
# for a loaded machine, and short enough for a quick test.
LIMIT_SECONDS = 4
LIMIT_MINUTES = LIMIT_SECONDS / 60
# The backend's shortest window between two CPU looks (2 s in production, where looks are a drift
# check apart): 1 s still sees a CPU loop (~100 ticks) against the 3 % threshold (3 ticks).
BUSY_WINDOW = 1.0
# How long a sandbox that must not stop is watched: past the limit by 2 s, where an idle one is
# stopped at the first look after the limit (the looks here are 0.2 s apart).
WATCH_SECONDS = LIMIT_SECONDS + 2


@pytest.fixture(autouse=True)
def short_idle_limit(settings, transactional_db, monkeypatch):
    settings.IDLE_STOP_MINUTES = LIMIT_MINUTES
    monkeypatch.setattr(local, "BUSY_MIN_WINDOW_SECONDS", BUSY_WINDOW)
    # Each test's process starts with no writes remembered (another test's sandbox ids repeat).
    activity._last_written.clear()
    yield
    # Whatever a test left running (a CPU loop when it failed half-way) ends with it.
    for sandbox in Sandbox.objects.all():
        get_sandbox_backend().delete(build_spec(sandbox))


def step_for(sandbox, seconds: float) -> set[str]:
    """Drift-checks the sandbox in this process for ``seconds``, as the beat would (more often);
    returns the statuses it was seen in."""
    seen = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        reconcile_sandbox(sandbox.pk)
        seen.add(Sandbox.objects.get(pk=sandbox.pk).status)
        time.sleep(0.2)
    return seen


def idle_events(project):
    return list(
        ResourceEvent.objects.filter(project=project, cause=TransitionCause.IDLE)
        .order_by("resource_kind")
        .values_list("resource_kind", "from_status", "to_status", "reason")
    )


def stop_idle(project, sandbox, database):
    """Steps until the idle stop has happened and both resources are STOPPED."""
    step_until(reconcile_sandbox, Sandbox, sandbox.pk, ResourceStatus.STOPPED, timeout=LIMIT_SECONDS + 15)
    step_until(reconcile_database, Database, database.pk, ResourceStatus.STOPPED)
    services.refresh_project_status(project.pk)


def test_an_idle_sandbox_stops_with_its_project_and_says_why(user):
    project, sandbox, database = running_project(user, "Idle Shop")
    started = time.monotonic()

    stop_idle(project, sandbox, database)

    assert time.monotonic() - started >= LIMIT_SECONDS - 0.5  # not before its time
    reason = f"Stopped: idle for {LIMIT_SECONDS} s. Opening its terminal starts it again."
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.STOPPED
    assert Sandbox.objects.get(pk=sandbox.pk).last_error == reason
    assert idle_events(project) == [
        ("database", ResourceStatus.RUNNING, ResourceStatus.STOPPING, reason),
        ("sandbox", ResourceStatus.RUNNING, ResourceStatus.STOPPING, reason),
    ]
    assert marked_processes(sandbox.name) == []
    # The card and the API say why; a stopped project's actions are as after the user's Stop.
    client = Client()
    client.force_login(user)
    card = client.get("/").content.decode()
    assert f'<p class="card-note" role="note">{reason}</p>' in card
    answer = client.get(f"/api/projects/{project.pk}").json()
    assert answer["status"] == ProjectStatus.STOPPED
    assert answer["sandbox"]["lastError"] == reason
    assert sorted(answer["allowedActions"]) == ["delete", "start"]


def test_a_sandbox_whose_processes_work_is_not_stopped(user):
    project, sandbox, database = running_project(user, "Busy Agent")
    # An agent at work, as the backend sees it: a process using CPU, here a quarter of one (busy
    # 100 ms, asleep 300 ms; the threshold is 3 %), so the test does not take a CPU from the rest of
    # the suite. Started straight at ttyd, not through the relay, so no terminal traffic is recorded.
    work = (
        "while :; do end=$(( ${EPOCHREALTIME/./} + 100000 )); "
        "while (( ${EPOCHREALTIME/./} < end )); do :; done; sleep 0.3; done"
    )
    shell(project, f"nohup bash -c '{work}' >/dev/null 2>&1 & echo started-$!", r"started-\d+")

    seen = step_for(sandbox, WATCH_SECONDS)

    assert seen == {ResourceStatus.RUNNING}
    assert idle_events(project) == []
    assert timezone.now() - Sandbox.objects.get(pk=sandbox.pk).last_activity_at < timezone.timedelta(seconds=5)
    # Once the work ends, the same sandbox is idle and stops.
    shell(project, "kill %1; echo killed-$?", r"killed-0")
    stop_idle(project, sandbox, database)
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.STOPPED


def test_a_keep_awake_process_keeps_it_running_without_using_cpu(user):
    project, sandbox, database = running_project(user, "Dev Server")
    shell(project, "keep-awake sleep 600 & echo awake-$!", r"awake-\d+")

    seen = step_for(sandbox, WATCH_SECONDS)

    assert seen == {ResourceStatus.RUNNING}
    assert idle_events(project) == []


def test_terminal_traffic_through_the_relay_keeps_it_running(user):
    project, sandbox, database = running_project(user, "Typing")
    cookie = session_cookie(user)

    async def type_for(seconds):
        communicator = terminal_communicator(project.pk, cookie=cookie)
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_to(bytes_data=json.dumps({"columns": 120, "rows": 30}).encode())
        seen = set()
        try:
            await read_until(communicator, PROMPT, timeout=20)
            deadline = time.monotonic() + seconds
            number = 0
            while time.monotonic() < deadline:
                number += 1
                await communicator.send_to(bytes_data=f"0echo tick-{number}\r".encode())
                await read_until(communicator, rf"tick-{number}\s", timeout=10)
                await sync_to_async(reconcile_sandbox)(sandbox.pk)
                seen.add(await sync_to_async(lambda: Sandbox.objects.get(pk=sandbox.pk).status)())
                await asyncio.sleep(0.5)
        finally:
            await communicator.disconnect()
        return seen

    assert run(type_for(WATCH_SECONDS)) == {ResourceStatus.RUNNING}
    assert idle_events(project) == []
    # The relay wrote the activity, not the admission alone: it is newer than the connection's start.
    terminal_session = sandbox.terminal_sessions.get()
    assert Sandbox.objects.get(pk=sandbox.pk).last_activity_at > terminal_session.started + timezone.timedelta(seconds=LIMIT_SECONDS)


def test_a_users_zero_means_never(user):
    UserQuota.objects.create(user=user, idle_stop_minutes=0)
    project, sandbox, database = running_project(user, "Never Idle")

    seen = step_for(sandbox, WATCH_SECONDS)

    assert seen == {ResourceStatus.RUNNING}
    assert idle_events(project) == []
    # Nothing was even measured for it.
    spec = build_spec(Sandbox.objects.get(pk=sandbox.pk))
    assert not (get_sandbox_backend().run_dir(spec) / "cpu-sample").exists()


def test_opening_the_terminal_page_starts_an_idle_stopped_project(user, other_user):
    project, sandbox, database = running_project(user, "Wake Me")
    stop_idle(project, sandbox, database)
    stranger = Client()
    stranger.force_login(other_user)
    assert stranger.get(f"/projects/{project.pk}/terminal/").status_code == 404
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.STOPPED

    client = Client()
    client.force_login(user)
    page = client.get(f"/projects/{project.pk}/terminal/")

    assert page.status_code == 200
    assert 'data-sandbox-status="STARTING"' in page.content.decode()
    assert "It was stopped while idle; starting it again." in page.content.decode()
    assert Sandbox.objects.get(pk=sandbox.pk).last_error == ""
    step_until(reconcile_sandbox, Sandbox, sandbox.pk, ResourceStatus.RUNNING)
    step_until(reconcile_database, Database, database.pk, ResourceStatus.RUNNING)
    # A second visit while it runs changes nothing.
    assert client.get(f"/projects/{project.pk}/terminal/").status_code == 200
    starts = ResourceEvent.objects.filter(project=project, to_status=ResourceStatus.STARTING, cause=TransitionCause.USER)
    assert starts.count() == 2  # the sandbox's and the database's, once


def test_opening_the_terminal_page_keeps_a_stop_the_user_chose(user):
    project, sandbox, database = running_project(user, "Stopped By Me")
    services.do_stop_project(project)
    step_until(reconcile_sandbox, Sandbox, sandbox.pk, ResourceStatus.STOPPED)

    client = Client()
    client.force_login(user)
    page = client.get(f"/projects/{project.pk}/terminal/")

    assert page.status_code == 200
    assert Sandbox.objects.get(pk=sandbox.pk).status == ResourceStatus.STOPPED
    assert 'id="terminal-start"' in page.content.decode()  # the overlay offers Start instead
