"""The user's work outlives its terminal server: a crashed ttyd comes back alone, the same tmux session
(scrollback, shell variables, background processes) is there after the reconnect, and the platform
looks at the sandbox as soon as the relay sees its terminal go, not at the next drift check."""

import asyncio
import json
import os
import re
import signal
import time

import pytest
from django.utils import timezone

from fullstackagent.status import ProjectStatus, ResourceStatus
from fullstackagent.testing.processes import wait_for
from projects import services
from sandboxes import terminal as terminal_service
from sandboxes.backends import get_sandbox_backend
from sandboxes.backends import isolation
from sandboxes.models import Sandbox
from sandboxes.reconcile import DRIFT_NOTE, build_spec
from tests.terminal.conftest import PROMPT, read_until, run, session_cookie, terminal_communicator

# A drift restart awaited for 4 s: run alone after the parallel part of `make test` (pyproject's markers).
pytestmark = pytest.mark.serial

# Long enough that only the relay's report can explain a look at the sandbox within the test.
SLOW_DRIFT_CHECK = {"RECONCILE_DRIFT_CHECK_SECONDS": 120}


def _open(project_id, cookie):
    return terminal_communicator(project_id, cookie=cookie, session="work")


async def _connect(communicator):
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(bytes_data=json.dumps({"columns": 200, "rows": 40}).encode())


async def _close_code(communicator, timeout=10.0) -> int:
    """Reads until the relay closes the browser's socket; returns its code."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await communicator.receive_output(deadline - loop.time())
        if message["type"] == "websocket.close":
            return message["code"]


def test_a_crashed_ttyd_comes_back_alone_and_the_session_lives_on(start_celery_worker, user, wait_for_status):
    start_celery_worker(beat=True, environment=SLOW_DRIFT_CHECK)
    project = wait_for_status(services.do_create_project(user, name="Survivor"), ProjectStatus.RUNNING)
    sandbox = Sandbox.objects.get(project=project)
    spec = build_spec(sandbox)
    backend = get_sandbox_backend()
    cookie = session_cookie(user)
    crashed = backend.terminal_server_pid(spec)
    checked_before = Sandbox.objects.get(pk=sandbox.pk).observed_at

    async def before_and_after():
        first = _open(project.pk, cookie)
        await _connect(first)
        await read_until(first, PROMPT)
        await first.send_to(bytes_data=b"0KEEP=kept-$((40+2)); sleep 900 & echo bg=$!; echo before-crash\r")
        output, _ = await read_until(first, r"\nbefore-crash")
        background = int(re.search(r"bg=(\d+)", output).group(1))

        os.kill(crashed, signal.SIGKILL)
        code = await _close_code(first)
        await first.disconnect()
        killed_at = time.monotonic()

        # The page reconnects (after 3 s; at once here) into the same session.
        second = None
        while second is None:
            assert time.monotonic() - killed_at < 3, "the terminal did not come back within 3 s"
            candidate = _open(project.pk, cookie)
            await _connect(candidate)
            message = await candidate.receive_output(5)
            if message["type"] == "websocket.close":  # ttyd not listening yet (4502) or restarting
                await asyncio.sleep(0.05)
                continue
            second = candidate
            first_output = message.get("bytes", b"")[1:].decode(errors="replace")
        screen, _ = await read_until(second, r"before-crash")
        await second.send_to(bytes_data=f"0echo $KEEP; kill -0 {background} && echo still-running\r".encode())
        after, _ = await read_until(second, r"\nstill-running")
        await second.disconnect()
        return code, first_output + screen + after

    code, output = run(before_and_after())

    assert code == terminal_service.CLOSE_UPSTREAM_GONE
    assert "kept-42" in output
    assert backend.terminal_server_pid(spec) not in (None, crashed)
    # The relay's report had the sandbox looked at within a scan or two, not after 120 s.
    wait_for(lambda: Sandbox.objects.get(pk=sandbox.pk).observed_at > checked_before, timeout=5,
             message="a check of the sandbox after the relay saw its terminal go")
    assert Sandbox.objects.get(pk=sandbox.pk).status == ResourceStatus.RUNNING


def test_a_sandbox_that_died_under_an_open_terminal_is_restarted_at_once(start_celery_worker, user, wait_for_status):
    start_celery_worker(beat=True, environment=SLOW_DRIFT_CHECK)
    project = wait_for_status(services.do_create_project(user, name="Phoenix"), ProjectStatus.RUNNING)
    sandbox = Sandbox.objects.get(project=project)
    spec = build_spec(sandbox)
    backend = get_sandbox_backend()
    cookie = session_cookie(user)

    async def crash():
        communicator = _open(project.pk, cookie)
        await _connect(communicator)
        await read_until(communicator, PROMPT)
        # The whole sandbox goes (its init killed, as an OOM kill or a machine fault would).
        init = isolation.namespace_child(int((backend.run_dir(spec) / "sandbox.pid").read_text()))
        os.kill(init, signal.SIGKILL)
        code = await _close_code(communicator)
        await communicator.disconnect()
        return code

    died_at = timezone.now()
    assert run(crash()) == terminal_service.CLOSE_UPSTREAM_GONE

    def restarted():
        row = Sandbox.objects.get(pk=sandbox.pk)
        return row.last_error.startswith(DRIFT_NOTE) and row.observed_at > died_at
    wait_for(restarted, timeout=4, message="the drift restart the relay's report led to")
    # The restart's step set the sandbox STARTING; the project's status follows a refresh later, so
    # it may still read RUNNING from before the crash: wait for the sandbox itself.
    wait_for(lambda: Sandbox.objects.get(pk=sandbox.pk).status == ResourceStatus.RUNNING, timeout=10,
             message="the restarted sandbox running")
    wait_for_status(project, ProjectStatus.RUNNING, timeout=10)
    assert backend.terminal_server_pid(spec) is not None
