"""Issue 13's reconcile semantics, stepped in-process against the real local backend and PostgreSQL:
no-op steps keep last_error, crash-loop backoff, progress deadlines, stop while creating, lease
renewal during long steps, one lock order for variables, a read-only status in the admin."""

import os
import signal
import threading
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from databases.models import Database
from fullstackagent.backends import PermanentError
from fullstackagent.reconcile import StepResult, claim, finish
from fullstackagent.status import ResourceStatus
from fullstackagent.testing.processes import database_url_for_tests, wait_for
from projects import services
from projects.models import Environment, Project, ResourceEvent
from projects.tasks import reconcile_database, reconcile_sandbox
from sandboxes.backends import get_sandbox_backend, isolation
from sandboxes.backends.local import LocalSandboxBackend, marked_processes, ttyd_processes
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec

pytestmark = pytest.mark.django_db(transaction=True)


def step_until(task, model, pk, status, timeout=20.0):
    """Runs the resource's reconcile task in this process until the row reaches ``status``."""

    def reached():
        task(pk)
        return model.objects.get(pk=pk).status == status

    wait_for(reached, timeout=timeout, interval=0.1, message=f"{model.__name__} {pk} to be {status}")
    return model.objects.get(pk=pk)


def running_project(user, name):
    project = services.do_create_project(user, name=name)
    database = step_until(reconcile_database, Database, Database.objects.get(project=project).pk, ResourceStatus.RUNNING)
    sandbox = step_until(reconcile_sandbox, Sandbox, Sandbox.objects.get(project=project).pk, ResourceStatus.RUNNING)
    return project, sandbox, database


def kill_terminal(sandbox):
    """The sandbox crashes: its init is killed, with everything in it (a ttyd dying alone is started
    again inside the sandbox, see tests/sandboxes/test_terminal_survival.py)."""
    pids = ttyd_processes(sandbox.name)
    assert len(pids) == 1
    run_dir = get_sandbox_backend().run_dir(build_spec(Sandbox.objects.get(pk=sandbox.pk)))
    os.kill(isolation.namespace_child(int((run_dir / "sandbox.pid").read_text())), signal.SIGKILL)
    wait_for(lambda: not ttyd_processes(sandbox.name), message="the terminal process to end")


def wait_for_a_lock_wait(probe, table: str, message: str) -> None:
    """Waits until one session of the test database waits for a lock in a statement naming ``table``."""
    wait_for(
        lambda: probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            [f"%{table}%"],
        ).fetchone()[0] == 1,
        message=message,
    )


def process_state(pid):
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def events_of(resource):
    rows = ResourceEvent.objects.filter(resource_id=resource.pk, resource_kind=type(resource)._meta.model_name)
    return list(rows.order_by("created", "id").values_list("from_status", "to_status", "cause"))


def test_a_duplicate_step_keeps_the_error_reason(user, monkeypatch):
    project = services.do_create_project(user, name="Kept Reason")
    sandbox = Sandbox.objects.get(project=project)
    reconcile_database(Database.objects.get(project=project).pk)

    def refuse(self, spec):
        raise PermanentError("The cluster refused the sandbox: forbidden.")

    monkeypatch.setattr(LocalSandboxBackend, "create", refuse)
    reconcile_sandbox(sandbox.pk)
    before = Sandbox.objects.get(pk=sandbox.pk)
    assert (before.status, before.last_error) == ("ERROR", "The cluster refused the sandbox: forbidden.")

    reconcile_sandbox(sandbox.pk)  # a duplicate message: the step changes nothing

    after = Sandbox.objects.get(pk=sandbox.pk)
    assert (after.status, after.last_error, after.updated, after.next_check_at) == (
        "ERROR", "The cluster refused the sandbox: forbidden.", before.updated, None
    )
    assert events_of(sandbox) == [("", "CREATING", "user"), ("CREATING", "ERROR", "reconcile")]
    assert ResourceEvent.objects.get(resource_id=sandbox.pk, to_status="ERROR").reason == (
        "The cluster refused the sandbox: forbidden."
    )


def test_a_crash_loop_backs_off_then_ends_in_error(user, settings):
    settings.RECONCILE_CRASH_LOOP_LIMIT = 2
    project, sandbox, _ = running_project(user, "Crash Loop")

    # First crash: restarted at once.
    kill_terminal(sandbox)
    first = step_until(reconcile_sandbox, Sandbox, sandbox.pk, ResourceStatus.STARTING)
    assert first.restarts == 1
    assert first.last_error == "The sandbox was found stopped while it should run; restarting it now (restart 1 in a row)."
    running = step_until(reconcile_sandbox, Sandbox, sandbox.pk, ResourceStatus.RUNNING)
    # A steady drift check is a no-op: the note saying why it restarted stays.
    reconcile_sandbox(sandbox.pk)
    assert Sandbox.objects.get(pk=sandbox.pk).last_error == first.last_error
    assert Sandbox.objects.get(pk=sandbox.pk).updated == running.updated

    # Second crash in a row: the restart waits 10 s, whatever messages arrive meanwhile.
    kill_terminal(sandbox)
    second = step_until(reconcile_sandbox, Sandbox, sandbox.pk, ResourceStatus.STARTING)
    assert second.restarts == 2
    assert round((second.next_check_at - second.last_restart_at).total_seconds()) == 10
    assert "restarting it in 10 s (restart 2 in a row)" in second.last_error
    reconcile_sandbox(sandbox.pk)  # a duplicate message before the delay is over
    assert Sandbox.objects.get(pk=sandbox.pk).status == ResourceStatus.STARTING
    assert ttyd_processes(sandbox.name) == []
    # The delay passes (moved back rather than waited for): the restart happens.
    Sandbox.objects.filter(pk=sandbox.pk).update(last_restart_at=second.last_restart_at - timedelta(seconds=10))
    step_until(reconcile_sandbox, Sandbox, sandbox.pk, ResourceStatus.RUNNING)
    assert len(ttyd_processes(sandbox.name)) == 1

    # Third crash in a row is over the limit (2): ERROR with the reason, no restart.
    kill_terminal(sandbox)
    failed = step_until(reconcile_sandbox, Sandbox, sandbox.pk, ResourceStatus.ERROR)
    assert failed.last_error == (
        "The sandbox was found stopped while it should run; it was restarted 2 times in a row and keeps "
        "failing (crash loop); start the project to try again."
    )
    assert ttyd_processes(sandbox.name) == []
    assert Project.objects.get(pk=project.pk).status == "ERROR"
    drift = [event for event in events_of(sandbox) if event[2] == "drift"]
    assert drift == [("RUNNING", "STARTING", "drift"), ("RUNNING", "STARTING", "drift"), ("RUNNING", "ERROR", "drift")]

    # The user's start recovers it and resets the count.
    services.do_start_project(Project.objects.get(pk=project.pk))
    recovered = step_until(reconcile_sandbox, Sandbox, sandbox.pk, ResourceStatus.RUNNING)
    assert (recovered.restarts, recovered.last_error) == (0, "")
    LocalSandboxBackend().delete(build_spec(recovered))


def test_a_crash_seen_while_bubblewrap_is_still_exiting_is_a_counted_restart(user):
    """Killing a sandbox's init ends everything in its namespace, then bubblewrap, its parent, reaps
    it and exits. A look in between (here made to last: bubblewrap is paused) sees the sandbox's
    first process alive and its terminal silent; that is a crash, restarted and counted as one, not
    a terminal still starting (which restarted it uncounted and without the note: CI, once)."""
    project, sandbox, _ = running_project(user, "Slow Exit")
    backend = get_sandbox_backend()
    spec = build_spec(Sandbox.objects.get(pk=sandbox.pk))
    outer = int((backend.run_dir(spec) / "sandbox.pid").read_text())
    os.kill(outer, signal.SIGSTOP)
    try:
        init = isolation.namespace_child(outer)
        os.kill(init, signal.SIGKILL)
        # A zombie (its parent is paused): the init and everything in its namespace have ended.
        wait_for(lambda: process_state(init) == "Z", message="the sandbox's init to end")
        assert ttyd_processes(sandbox.name) == []
        observation = backend.observe(spec)
        assert (observation.phase.value, observation.message) == (
            "stopping", "the sandbox's init ended; bubblewrap is exiting"
        )

        reconcile_sandbox(sandbox.pk)

        crashed = Sandbox.objects.get(pk=sandbox.pk)
        assert (crashed.status, crashed.restarts) == ("STARTING", 1)
        assert crashed.last_error == (
            "The sandbox was found stopping while it should run; restarting it now (restart 1 in a row)."
        )
    finally:
        os.kill(outer, signal.SIGCONT)
    # The restart ends what is left of the old sandbox (the paused bubblewrap) and starts a new one.
    restarted = step_until(reconcile_sandbox, Sandbox, sandbox.pk, ResourceStatus.RUNNING)
    assert int((backend.run_dir(spec) / "sandbox.pid").read_text()) != outer
    assert len(ttyd_processes(sandbox.name)) == 1
    assert [event for event in events_of(sandbox) if event[2] == "drift"] == [("RUNNING", "STARTING", "drift")]
    LocalSandboxBackend().delete(build_spec(restarted))


def test_a_transitional_status_past_its_deadline_is_an_error(user, settings):
    settings.RECONCILE_PROGRESS_DEADLINE_SECONDS = 600
    project = services.do_create_project(user, name="Stuck")
    sandbox = Sandbox.objects.get(project=project)
    Sandbox.objects.filter(pk=sandbox.pk).update(status_changed_at=timezone.now() - timedelta(seconds=601))

    reconcile_sandbox(sandbox.pk)

    sandbox.refresh_from_db()
    assert (sandbox.status, sandbox.next_check_at) == ("ERROR", None)
    assert sandbox.last_error == (
        "Still CREATING after 600 s (the progress deadline); start, stop or delete the project to try again."
    )
    assert marked_processes(sandbox.name) == []  # no step was taken
    assert events_of(sandbox)[-1] == ("CREATING", "ERROR", "deadline")


def test_a_project_can_be_stopped_while_creating_and_started_again(user):
    project = services.do_create_project(user, name="Second Thoughts")
    sandbox, database = Sandbox.objects.get(project=project), Database.objects.get(project=project)

    stopped = services.do_stop_project(project)

    assert stopped.status == "STOPPING"
    step_until(reconcile_sandbox, Sandbox, sandbox.pk, ResourceStatus.STOPPED)
    step_until(reconcile_database, Database, database.pk, ResourceStatus.STOPPED)
    assert marked_processes(sandbox.name) == []
    services.do_start_project(Project.objects.get(pk=project.pk))
    step_until(reconcile_database, Database, database.pk, ResourceStatus.RUNNING)
    running = step_until(reconcile_sandbox, Sandbox, sandbox.pk, ResourceStatus.RUNNING)
    assert len(ttyd_processes(sandbox.name)) == 1
    assert events_of(sandbox)[:3] == [("", "CREATING", "user"), ("CREATING", "STOPPING", "user"), ("STOPPING", "STOPPED", "reconcile")]
    LocalSandboxBackend().delete(build_spec(running))


def test_the_lease_is_renewed_while_a_long_step_runs(user, settings, monkeypatch):
    settings.RECONCILE_LEASE_SECONDS = 1
    project = services.do_create_project(user, name="Slow Cluster")
    sandbox = Sandbox.objects.get(project=project)
    Database.objects.filter(project=project).update(status=ResourceStatus.ERROR)  # no waiting on it
    real_create = LocalSandboxBackend.create
    seen = {}

    def slow_create(self, spec):
        first_lease_end = Sandbox.objects.get(pk=spec.sandbox_id).locked_until
        # The step outlives its first lease; meanwhile the heartbeat keeps the lease in the future.
        wait_for(
            lambda: timezone.now() > first_lease_end + timedelta(seconds=0.5)
            and Sandbox.objects.get(pk=spec.sandbox_id).locked_until > timezone.now(),
            timeout=10,
            message="the lease to be renewed past its first end",
        )
        seen["second worker"] = claim(Sandbox, spec.sandbox_id)
        return real_create(self, spec)

    monkeypatch.setattr(LocalSandboxBackend, "create", slow_create)
    reconcile_sandbox(sandbox.pk)

    assert seen["second worker"] is None
    sandbox.refresh_from_db()
    assert (sandbox.status in ("STARTING", "RUNNING"), sandbox.locked_until, sandbox.lease_token) == (True, None, None)
    LocalSandboxBackend().delete(build_spec(sandbox))


@pytest.mark.parametrize("change", ["set", "delete"])
def test_variable_changes_lock_the_project_before_the_variable(user, change):
    project = services.do_create_project(user, name="Lock Order")
    services.do_set_variables(project, [{"key": "GREETING", "value": "hello"}])
    variable = Environment.objects.get(project=project, key="GREETING")
    url = database_url_for_tests()
    errors = []

    def run_change():
        try:
            if change == "set":
                services.do_set_variables(project, [{"key": "GREETING", "value": "bonjour"}])
            else:
                services.do_delete_variable(project, "GREETING")
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as probe:
        # Another transaction (a stop, a status refresh) holds the project.
        holder.execute("SELECT 1 FROM projects_project WHERE id = %s FOR UPDATE", [project.pk])
        thread = threading.Thread(target=run_change)
        thread.start()
        wait_for_a_lock_wait(probe, "projects_project", "the change to wait for the project lock")
        # It waits holding no variable row: taking one now does not block (no deadlock possible).
        with probe.transaction():
            probe.execute("SELECT 1 FROM projects_environment WHERE id = %s FOR UPDATE NOWAIT", [variable.pk])
        holder.rollback()
        thread.join(timeout=10)
    assert errors == []
    remaining = list(Environment.objects.filter(project=project, key="GREETING").values_list("value", flat=True))
    assert remaining == (["bonjour"] if change == "set" else [])


def test_a_step_landing_while_a_stop_holds_the_project_does_not_deadlock(user, monkeypatch):
    """A worker's step lands (the database row updated, its transition event about to be inserted)
    just as the user's stop, holding the project, waits for that database row. The event's foreign
    key check on the project must not wait for the stop: each would wait for the other (PostgreSQL
    ended one with "deadlock detected" in test_chaos)."""
    from projects import events

    project = services.do_create_project(user, name="Crossing")
    database = Database.objects.get(project=project)
    row = claim(Database, database.pk)
    record_transition, errors, stops = events.record_transition, [], []

    def stop():
        try:
            services.do_stop_project(project)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    def record_once_the_stop_waits(*args, **kwargs):
        # The step's UPDATE has the database row; the stop begins now and waits for it.
        stops.append(threading.Thread(target=stop))
        stops[0].start()
        with psycopg.connect(database_url_for_tests(), autocommit=True) as probe:
            wait_for_a_lock_wait(probe, "databases_database", "the stop to wait for the database row")
        record_transition(*args, **kwargs)

    monkeypatch.setattr(events, "record_transition", record_once_the_stop_waits)
    landed = finish(Database, row, ResourceStatus.CREATING, StepResult(ResourceStatus.RUNNING, recheck_in=10), attempts=0)
    stops[0].join(timeout=10)

    assert landed and errors == []
    assert Database.objects.get(pk=database.pk).status == ResourceStatus.STOPPING  # the stop came after
    assert [(f, t) for f, t, _ in events_of(database)] == [
        ("", ResourceStatus.CREATING), (ResourceStatus.CREATING, ResourceStatus.RUNNING),
        (ResourceStatus.RUNNING, ResourceStatus.STOPPING),
    ]


def test_the_admin_does_not_let_operators_edit_a_status(admin_client, user):
    project = services.do_create_project(user, name="Admin View")
    sandbox, database = Sandbox.objects.get(project=project), Database.objects.get(project=project)
    for name, pk in (("sandboxes_sandbox", sandbox.pk), ("databases_database", database.pk)):
        page = admin_client.get(reverse(f"admin:{name}_change", args=[pk])).content.decode()
        assert 'name="status"' not in page
        assert '<div class="readonly">Creating</div>' in page  # shown, read-only
