"""The terminal websocket as the production web server (fullstackagent.server.serve, uvicorn) serves
it, over TCP from a real client: what its options promise (fullstackagent.server.web_process)."""

import asyncio
import json
import os
import re
import signal

import pytest
import websockets

from fullstackagent.testing.processes import PlatformServer, wait_for_connections_to_close
from fullstackagent.testing.ttyd import strip_ansi
from sandboxes.models import TerminalSession
from tests.terminal.conftest import PROMPT, session_cookie

pytestmark = pytest.mark.timeout(120)


async def open_terminal(server, project, cookie, session="main", **headers):
    """A terminal opened as the page opens it, read until its prompt."""
    websocket = await websockets.connect(
        f"ws://127.0.0.1:{server.port}/ws/projects/{project.pk}/terminal/?session={session}",
        additional_headers={"Origin": server.url, "Cookie": f"sessionid={cookie}", **headers},
        compression=None,
        max_size=None,
        open_timeout=20,
    )
    await websocket.send(json.dumps({"columns": 80, "rows": 24}))
    output = b""
    async with asyncio.timeout(20):
        while not re.search(PROMPT, strip_ansi(output)):
            frame = await websocket.recv()
            if frame[:1] == b"0":
                output += frame[1:]
    return websocket


async def close_code_of(websocket, timeout: float = 20) -> int:
    """Reads until the server closes the websocket; the close code it sent."""
    async with asyncio.timeout(timeout):
        try:
            while True:
                await websocket.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


def test_a_stopping_web_server_closes_open_terminals_with_1012_and_exits_0(running_project, user, tmp_path):
    """SIGTERM (a deploy, Kubernetes moving the pod): the page is told "service restart" (1012) and
    reconnects to the same tmux session (static/js/terminal.js), the server exits 0, the audit row
    is closed."""
    server = PlatformServer(tmp_path)
    cookie = session_cookie(user)

    async def go():
        websocket = await open_terminal(server, running_project, cookie)
        os.kill(server.process.pid, signal.SIGTERM)
        return await close_code_of(websocket)

    try:
        code = asyncio.run(go())
        exit_code = server.process.wait(timeout=30)
    finally:
        server.stop()
        wait_for_connections_to_close(server.application_name)

    assert code == 1012
    assert exit_code == 0
    audit = TerminalSession.objects.get(sandbox__project=running_project)
    assert audit.ended is not None
    assert audit.close_code == 1012


def test_a_forwarded_for_header_does_not_change_the_recorded_client_address(live_platform, running_project, user):
    """X-Forwarded-For is believed only with TRUSTED_PROXY_COUNT (allauth's rate limits), never by
    the server itself: uvicorn would, by default, from 127.0.0.1."""
    cookie = session_cookie(user)

    async def go():
        websocket = await open_terminal(live_platform, running_project, cookie, **{"X-Forwarded-For": "203.0.113.9"})
        await websocket.close()

    asyncio.run(go())

    assert TerminalSession.objects.get(sandbox__project=running_project).client_address == "127.0.0.1"


def test_a_message_over_16_mib_closes_the_terminal_with_1009(live_platform, running_project, user):
    """A frame over the server's limit is refused (1009, "message too big") before the relay holds
    it; the limit is high, as the preview relays the user's own app's websockets through the same
    server."""
    cookie = session_cookie(user)

    async def go():
        websocket = await open_terminal(live_platform, running_project, cookie)
        try:
            await websocket.send(b"0" + b"x" * (16 * 1024 * 1024))
        except websockets.ConnectionClosed as closed:  # refused while the frame was still being sent
            return closed.rcvd.code if closed.rcvd else None
        return await close_code_of(websocket)

    assert asyncio.run(go()) == 1009
