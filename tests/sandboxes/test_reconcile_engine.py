"""The reconcile engine with real workers: concurrency, crashes, drift, retries, environment."""

import asyncio
import os
import signal
from pathlib import Path

import pytest
import websockets
from django.conf import settings
from django.utils import timezone

from databases.models import Database
from fullstackagent.backends import PermanentError, RetryableError
from fullstackagent.reconcile import claim
from fullstackagent.status import ProjectStatus, ResourceStatus
from fullstackagent.testing.processes import wait_for
from fullstackagent.testing.ttyd import open_session, run_command
from projects import services
from projects.models import Project
from projects.tasks import reconcile_database, reconcile_sandbox
from sandboxes.backends import get_sandbox_backend, isolation
from sandboxes.backends.local import LocalSandboxBackend, marked_processes, ttyd_processes
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec


def _children(pid):
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except FileNotFoundError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def _upstream(project):
    sandbox = Sandbox.objects.get(project=project)
    return get_sandbox_backend().terminal_upstream(build_spec(sandbox))


def test_two_workers_never_create_anything_twice(start_celery_worker, user, wait_for_status):
    start_celery_worker(name="w1", beat=True)
    start_celery_worker(name="w2", beat=False)
    projects = [services.do_create_project(user, name=f"Twin {letter}") for letter in "abcd"]
    # Every resource is queued many more times at once, so both workers race for each row.
    for project in projects:
        for _ in range(10):
            reconcile_sandbox.delay(Sandbox.objects.get(project=project).pk)
            reconcile_database.delay(Database.objects.get(project=project).pk)
    for project in projects:
        wait_for_status(project, ProjectStatus.RUNNING)
    for project in projects:
        sandbox = Sandbox.objects.get(project=project)
        assert len(ttyd_processes(sandbox.name)) == 1
    from databases.backends.local import local_identifier
    import psycopg

    names = [local_identifier(Database.objects.get(project=p).name) for p in projects]
    with psycopg.connect(settings.LOCAL_DATABASE_ADMIN_URL) as connection:
        roles = connection.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)", [names]).fetchone()[0]
        databases = connection.execute("SELECT count(*) FROM pg_database WHERE datname = ANY(%s)", [names]).fetchone()[0]
    assert (roles, databases) == (4, 4)


def test_worker_killed_mid_step_is_recovered_after_the_lease(start_celery_worker, user, settings, wait_for_status):
    settings.RECONCILE_LEASE_SECONDS = 5
    project = services.do_create_project(user, name="Crash Test")
    sandbox = Sandbox.objects.get(project=project)
    # A worker claims the sandbox and dies before its step lands: the lease is all that is left.
    crashed = claim(Sandbox, sandbox.pk)
    assert crashed is not None and crashed.locked_until > timezone.now()
    # Drift checks every second from the start: w1 sets the time of the next one, which w2 keeps.
    worker = start_celery_worker(name="w1", environment={"RECONCILE_LEASE_SECONDS": 5, "RECONCILE_DRIFT_CHECK_SECONDS": 1})
    # While the lease holds, nobody touches the sandbox (the database proceeds).
    wait_for(lambda: Database.objects.get(project=project).status == ResourceStatus.RUNNING, message="database")
    assert Sandbox.objects.get(pk=sandbox.pk).status == ResourceStatus.CREATING
    assert ttyd_processes(sandbox.name) == []
    # After it, the beat finds the row again and the step is redone.
    wait_for_status(project, ProjectStatus.RUNNING, timeout=20)
    assert len(ttyd_processes(sandbox.name)) == 1

    # The sandbox outlives its worker: after a SIGKILL of the worker, the next worker finds the
    # same process again instead of starting another.
    pid = ttyd_processes(sandbox.name)[0]
    worker.kill()
    second = start_celery_worker(name="w2", environment={"RECONCILE_LEASE_SECONDS": 5, "RECONCILE_DRIFT_CHECK_SECONDS": 1})
    checked = Sandbox.objects.get(pk=sandbox.pk).observed_at
    wait_for(lambda: Sandbox.objects.get(pk=sandbox.pk).observed_at > checked, message="a drift check by w2")
    assert ttyd_processes(sandbox.name) == [pid]
    assert Sandbox.objects.get(pk=sandbox.pk).status == ResourceStatus.RUNNING

    # A real SIGKILL of the worker while work is queued: another worker converges it.
    services.do_stop_project(project)
    second.kill()
    start_celery_worker(name="w3", environment={"RECONCILE_LEASE_SECONDS": 5})
    wait_for_status(project, ProjectStatus.STOPPED, timeout=20)
    assert marked_processes(sandbox.name) == []


def test_terminal_without_the_token_is_refused_before_any_shell(celery_worker, user, wait_for_status):
    project = services.do_create_project(user, name="Locked Door")
    wait_for_status(project, ProjectStatus.RUNNING)
    upstream = _upstream(project)
    ttyd_pid = ttyd_processes(Sandbox.objects.get(project=project).name)[0]
    assert _children(ttyd_pid) == []

    async def attempt(token):
        """Refused either at the handshake (no Basic credentials) or right after the init frame."""
        try:
            session = await open_session(upstream, token=token)
        except (websockets.InvalidHandshake, EOFError, ConnectionError):
            return "handshake"
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(session.websocket.recv(), 5)
        return "closed"

    for token in ("", "d3Jvbmc6dG9rZW4="):  # none, and base64("wrong:token")
        assert asyncio.run(attempt(token)) in ("handshake", "closed")
        assert _children(ttyd_pid) == []
    # The right token does get a shell.
    assert "ok-42" in run_command(upstream, "echo ok-$((6*7))", r"ok-42")


def test_variable_changes_reach_a_new_shell(celery_worker, user, wait_for_status):
    project = services.do_create_project(user, name="Env Test")
    wait_for_status(project, ProjectStatus.RUNNING)
    sandbox = Sandbox.objects.get(project=project)

    def applied(value):
        services.do_set_variables(project, [{"key": "GREETING", "value": value}]) if value else services.do_delete_variable(project, "GREETING")
        assert Sandbox.objects.get(pk=sandbox.pk).status == ResourceStatus.UPDATING
        wait_for_status(project, ProjectStatus.RUNNING)
        # A new shell (its own tmux session): open ones keep the environment they started with.
        return run_command(
            _upstream(project), 'echo "greeting=[$GREETING]"', r"greeting=\[[^\]$]*\]\n", session=f"check-{value}"
        )

    assert "greeting=[hello]" in applied("hello")
    assert "greeting=[bonjour]" in applied("bonjour")
    assert "greeting=[]" in applied(None)


def test_a_sandbox_whose_process_died_is_restarted(start_celery_worker, user, wait_for_status):
    start_celery_worker(environment={"RECONCILE_DRIFT_CHECK_SECONDS": 1})
    project = services.do_create_project(user, name="Drift Test")
    wait_for_status(project, ProjectStatus.RUNNING)
    sandbox = Sandbox.objects.get(project=project)
    old_pid = ttyd_processes(sandbox.name)[0]
    # The whole sandbox dies (its init killed, as the kernel's OOM killer or a crash would); a ttyd
    # that dies alone is started again inside (tests/sandboxes/test_terminal_survival.py).
    spec = build_spec(sandbox)
    os.kill(isolation.namespace_child(int((get_sandbox_backend().run_dir(spec) / "sandbox.pid").read_text())), signal.SIGKILL)

    def restarted():
        pids = ttyd_processes(sandbox.name)
        return pids and pids[0] != old_pid and Sandbox.objects.get(pk=sandbox.pk).status == ResourceStatus.RUNNING

    wait_for(restarted, timeout=20, message="the sandbox to be restarted")
    assert "restarting it" in Sandbox.objects.get(pk=sandbox.pk).last_error


@pytest.mark.django_db(transaction=True)
def test_retryable_failures_back_off_then_recover(user, monkeypatch):
    project = services.do_create_project(user, name="Flaky")
    sandbox = Sandbox.objects.get(project=project)
    Database.objects.filter(project=project).update(status=ResourceStatus.ERROR)  # no waiting on it
    real_create = LocalSandboxBackend.create
    failures = {"left": 2}

    def flaky_create(self, spec):
        if failures["left"]:
            failures["left"] -= 1
            raise RetryableError("the node is busy")
        return real_create(self, spec)

    monkeypatch.setattr(LocalSandboxBackend, "create", flaky_create)
    reconcile_sandbox(sandbox.pk)
    sandbox.refresh_from_db()
    assert (sandbox.status, sandbox.attempts, sandbox.last_error) == ("CREATING", 1, "the node is busy (retrying, attempt 1)")
    first_delay = (sandbox.next_check_at - sandbox.observed_at).total_seconds()
    reconcile_sandbox(sandbox.pk)
    sandbox.refresh_from_db()
    second_delay = (sandbox.next_check_at - sandbox.observed_at).total_seconds()
    assert sandbox.attempts == 2
    assert round(first_delay) == 2 and round(second_delay) == 4
    reconcile_sandbox(sandbox.pk)
    sandbox.refresh_from_db()
    assert (sandbox.status, sandbox.attempts, sandbox.last_error) == ("RUNNING", 0, "")
    LocalSandboxBackend().delete(build_spec(sandbox))


@pytest.mark.django_db(transaction=True)
def test_permanent_failure_is_an_error_and_start_recovers(user, monkeypatch):
    project = services.do_create_project(user, name="Broken")
    sandbox = Sandbox.objects.get(project=project)
    reconcile_database(Database.objects.get(project=project).pk)

    def refuse(self, spec):
        raise PermanentError("The cluster refused the sandbox: forbidden.")

    with monkeypatch.context() as patched:
        patched.setattr(LocalSandboxBackend, "create", refuse)
        reconcile_sandbox(sandbox.pk)
    sandbox.refresh_from_db()
    assert (sandbox.status, sandbox.last_error, sandbox.next_check_at) == (
        "ERROR", "The cluster refused the sandbox: forbidden.", None
    )
    assert Project.objects.get(pk=project.pk).status == "ERROR"

    services.do_start_project(Project.objects.get(pk=project.pk))
    reconcile_sandbox(sandbox.pk)
    sandbox.refresh_from_db()
    assert (sandbox.status, sandbox.last_error) == ("RUNNING", "")
    assert Project.objects.get(pk=project.pk).status == "RUNNING"
    LocalSandboxBackend().delete(build_spec(sandbox))


@pytest.mark.django_db(transaction=True)
def test_too_many_retries_end_in_error(user, monkeypatch, settings):
    settings.RECONCILE_MAX_RETRIES = 2
    project = services.do_create_project(user, name="Never")
    sandbox = Sandbox.objects.get(project=project)
    Database.objects.filter(project=project).update(status=ResourceStatus.ERROR)

    def always(self, spec):
        raise RetryableError("the API server timed out")

    monkeypatch.setattr(LocalSandboxBackend, "create", always)
    reconcile_sandbox(sandbox.pk)
    reconcile_sandbox(sandbox.pk)
    sandbox.refresh_from_db()
    assert sandbox.status == "ERROR"
    assert sandbox.last_error == "the API server timed out (gave up after 2 attempts; start the project to try again)"


@pytest.mark.django_db(transaction=True)
def test_a_leased_row_is_left_alone(user):
    project = services.do_create_project(user, name="Leased")
    sandbox = Sandbox.objects.get(project=project)
    held = claim(Sandbox, sandbox.pk)
    assert claim(Sandbox, sandbox.pk) is None
    reconcile_sandbox(sandbox.pk)
    sandbox.refresh_from_db()
    assert (sandbox.status, sandbox.lease_token) == ("CREATING", held.lease_token)


@pytest.mark.django_db(transaction=True)
def test_user_change_during_a_step_wins(user, monkeypatch):
    """Stop pressed while a start is in flight: the step's RUNNING must not overwrite STOPPING."""
    project = services.do_create_project(user, name="Race")
    sandbox = Sandbox.objects.get(project=project)
    reconcile_database(Database.objects.get(project=project).pk)
    real_create = LocalSandboxBackend.create

    def create_then_user_stops(self, spec):
        observation = real_create(self, spec)
        Sandbox.objects.filter(pk=spec.sandbox_id).update(status=ResourceStatus.STOPPING)
        return observation

    monkeypatch.setattr(LocalSandboxBackend, "create", create_then_user_stops)
    reconcile_sandbox(sandbox.pk)
    sandbox.refresh_from_db()
    assert (sandbox.status, sandbox.lease_token, sandbox.locked_until) == ("STOPPING", None, None)
    assert sandbox.runtime_state["port"] > 0  # what was observed is kept
    monkeypatch.undo()
    reconcile_sandbox(sandbox.pk)
    sandbox.refresh_from_db()
    assert sandbox.status == "STOPPED"
    assert marked_processes(sandbox.name) == []
    LocalSandboxBackend().delete(build_spec(sandbox))
