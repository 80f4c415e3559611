"""Fixtures for the terminal tests: a project whose sandbox is a real ttyd (the local backend, started
directly rather than through a Celery worker, so the tests stay quick), and helpers to drive the
platform's websocket the way a browser does."""

import asyncio
import os
import re
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from fullstackagent.status import ResourceStatus
from fullstackagent.testing.ttyd import strip_ansi
from projects import services
from sandboxes.backends import get_sandbox_backend
from sandboxes.backends.base import SandboxPhase
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec

SITE = "testserver"
# The end of the shell prompt (runtime/bashrc; `#` when the tests run as root): type only once the
# shell reads input, as a person would.
PROMPT = r"[$#] "


@pytest.fixture
def make_running_project(transactional_db):
    """Creates a project and runs its sandbox's ttyd; everything started is stopped afterwards."""
    started = []

    def make(user, name="Terminal Test"):
        project = services.do_create_project(user, name=name)
        sandbox = Sandbox.objects.get(project=project)
        observation = get_sandbox_backend().create(build_spec(sandbox))
        assert observation.phase == SandboxPhase.RUNNING, observation
        started.append(sandbox)
        Sandbox.objects.filter(pk=sandbox.pk).update(
            status=ResourceStatus.RUNNING, applied_environment_hash=observation.applied_environment_hash
        )
        return project

    yield make
    for sandbox in started:
        get_sandbox_backend().delete(build_spec(Sandbox.objects.get(pk=sandbox.pk)))


@pytest.fixture
def running_project(make_running_project, user):
    return make_running_project(user)


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def terminal_communicator(project_id, *, cookie=None, origin=f"http://{SITE}", session=None, host=SITE):
    from fullstackagent.asgi import application

    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    path = f"/ws/projects/{project_id}/terminal/"
    if session is not None:
        path += f"?session={session}"
    return WebsocketCommunicator(application, path, headers=headers)


def run(coroutine):
    """Runs a test coroutine; afterwards closes the connections database_sync_to_async opened in its
    worker thread (CONN_MAX_AGE keeps them open, and an open one blocks dropping the test database)."""

    async def go():
        try:
            return await coroutine
        finally:
            await sync_to_async(connections.close_all)()

    return asyncio.run(go())


async def read_until(communicator, pattern: str, timeout: float = 10.0) -> tuple[str, int]:
    """Reads websocket.send frames until ``pattern`` (a regex) matches the ANSI-stripped output.
    Returns the output and the number of bytes received."""
    output = bytearray()
    received = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not re.search(pattern, strip_ansi(bytes(output))):
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"{pattern!r} not seen; output was:\n{strip_ansi(bytes(output))[-2000:]}")
        try:
            message = await communicator.receive_output(remaining)
        except TimeoutError:
            continue
        assert message["type"] == "websocket.send", message
        frame = message["bytes"]
        received += len(frame)
        if frame[:1] == b"0":
            output += frame[1:]
    return strip_ansi(bytes(output)), received


def ttyd_children(project) -> list[int]:
    """Processes ttyd spawned: one per authenticated connection (ttyd checks the credential first)."""
    sandbox = Sandbox.objects.get(project=project)
    ttyd_pid = get_sandbox_backend().terminal_server_pid(build_spec(sandbox))
    assert ttyd_pid is not None, "the sandbox's ttyd is not running"
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == ttyd_pid:
            children.append(int(entry))
    return children


def shell(project, command: str, expect: str, session: str = "main") -> str:
    """Runs ``command`` in the project's terminal session straight at ttyd (test set-up only) and
    returns the output once ``expect`` (a regex) shows; waits for the prompt before typing."""
    from fullstackagent.testing.ttyd import open_session

    upstream = get_sandbox_backend().terminal_upstream(build_spec(Sandbox.objects.get(project=project)))

    async def go():
        terminal = await open_session(upstream, session=session)
        try:
            await terminal.expect(PROMPT)
            await terminal.send(command + "\r")
            return await terminal.expect(expect)
        finally:
            await terminal.websocket.close()

    return asyncio.run(go())


def workspace(project) -> Path:
    return Path(get_sandbox_backend().workspace(build_spec(Sandbox.objects.get(project=project))))



@pytest.fixture
def sandboxes_cleanup(transactional_db):
    """Ends the ttyd and tmux processes of sandboxes that a browser test created through the UI."""
    yield
    for sandbox in Sandbox.objects.all():
        get_sandbox_backend().delete(build_spec(sandbox))
