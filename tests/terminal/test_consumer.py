"""The terminal proxy (sandboxes.consumers) against a real ttyd: who gets in, what is relayed, what is
recorded. Refusals also prove that no upstream connection was opened."""

import asyncio
import json

import pytest
from django.test import override_settings

from fullstackagent.status import ResourceStatus
from sandboxes import consumers
from sandboxes.backends import get_sandbox_backend
from sandboxes.models import Sandbox, TerminalSession
from sandboxes.reconcile import build_spec
from sandboxes.terminal import origin_allowed
from tests.terminal.conftest import PROMPT, read_until, run, session_cookie, terminal_communicator, ttyd_children


@pytest.fixture
def upstream_connections(monkeypatch):
    """Counts the consumer's upstream connection attempts."""
    calls = []
    real_connect = consumers.connect_upstream

    async def counting_connect(upstream, session_name):
        calls.append(session_name)
        return await real_connect(upstream, session_name)

    monkeypatch.setattr(consumers, "connect_upstream", counting_connect)
    return calls


async def _close_code(communicator) -> int:
    connected, _ = await communicator.connect()
    assert connected
    message = await communicator.receive_output(5)
    assert message["type"] == "websocket.close", message
    await communicator.wait(5)
    return message["code"]


def test_anonymous_client_is_refused_with_4401_and_no_upstream(running_project, upstream_connections):
    communicator = terminal_communicator(running_project.pk)

    assert run(_close_code(communicator)) == 4401
    assert upstream_connections == []
    assert ttyd_children(running_project) == []
    assert TerminalSession.objects.count() == 0


def test_other_users_project_is_refused_with_4404_and_no_upstream(running_project, other_user, upstream_connections):
    communicator = terminal_communicator(running_project.pk, cookie=session_cookie(other_user))

    assert run(_close_code(communicator)) == 4404
    assert upstream_connections == []
    assert ttyd_children(running_project) == []
    assert TerminalSession.objects.count() == 0


def test_missing_project_is_refused_with_4404(running_project, user, upstream_connections):
    communicator = terminal_communicator(running_project.pk + 1000, cookie=session_cookie(user))

    assert run(_close_code(communicator)) == 4404
    assert upstream_connections == []


def test_foreign_origin_is_refused_with_4403_and_no_upstream(running_project, user, upstream_connections):
    communicator = terminal_communicator(
        running_project.pk, cookie=session_cookie(user), origin="http://evil.example"
    )

    assert run(_close_code(communicator)) == 4403
    assert upstream_connections == []
    assert ttyd_children(running_project) == []
    assert TerminalSession.objects.count() == 0


def test_missing_origin_is_refused_with_4403(running_project, user, upstream_connections):
    communicator = terminal_communicator(running_project.pk, cookie=session_cookie(user), origin=None)

    assert run(_close_code(communicator)) == 4403
    assert upstream_connections == []


def test_sandbox_not_running_is_refused_with_4409_and_no_upstream(running_project, user, upstream_connections):
    # ttyd still runs: the refusal comes from the recorded status, not from a failed connection.
    Sandbox.objects.filter(project=running_project).update(status=ResourceStatus.STOPPING)
    communicator = terminal_communicator(running_project.pk, cookie=session_cookie(user))

    assert run(_close_code(communicator)) == 4409
    assert upstream_connections == []
    assert ttyd_children(running_project) == []
    assert TerminalSession.objects.count() == 0


def test_malformed_session_name_is_refused_with_4400(running_project, user, upstream_connections):
    communicator = terminal_communicator(running_project.pk, cookie=session_cookie(user), session="../etc")

    assert run(_close_code(communicator)) == 4400
    assert upstream_connections == []


def test_unreachable_terminal_is_refused_with_4502(running_project, user, upstream_connections):
    # The row says RUNNING but the process is gone (the reconciler has not noticed yet).
    sandbox = Sandbox.objects.get(project=running_project)
    get_sandbox_backend().stop(build_spec(sandbox))
    communicator = terminal_communicator(running_project.pk, cookie=session_cookie(user))

    assert run(_close_code(communicator)) == 4502
    assert TerminalSession.objects.count() == 0


def test_owner_runs_a_command_and_the_audit_counts_every_byte(running_project, user, upstream_connections):
    communicator = terminal_communicator(running_project.pk, cookie=session_cookie(user))
    init = json.dumps({"columns": 100, "rows": 30}).encode()
    command = b"0echo $((6*7))\r"

    async def session():
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_to(bytes_data=init)
        _, received = await read_until(communicator, PROMPT)
        await communicator.send_to(bytes_data=command)
        output, more = await read_until(communicator, "\n42")
        received += more
        await communicator.disconnect(code=1000, timeout=5)
        while not communicator.output_queue.empty():  # frames relayed after we stopped reading
            received += len(communicator.output_queue.get_nowait().get("bytes") or b"")
        return output, received

    output, received = run(session())

    assert "\n42" in output
    assert upstream_connections == ["main"]
    audit = TerminalSession.objects.get()
    assert audit.user == user
    assert audit.sandbox == Sandbox.objects.get(project=running_project)
    assert audit.session_name == "main"
    assert audit.ended is not None
    assert audit.close_code == 1000
    assert audit.bytes_from_browser == len(init) + len(command)
    assert audit.bytes_to_browser == received


def test_resize_reaches_the_shell(running_project, user):
    communicator = terminal_communicator(running_project.pk, cookie=session_cookie(user), session="sizes")

    async def session():
        await communicator.connect()
        await communicator.send_to(bytes_data=b'{"columns": 80, "rows": 24}')
        await read_until(communicator, PROMPT)
        await communicator.send_to(bytes_data=b'1{"columns": 132, "rows": 41}')
        # ttyd resizes the pty at once, tmux its pane when it gets to it: a shell asked right away
        # may still answer the old size (a full run here, once: "23 80"). Asked again until the size arrives.
        for _ in range(20):
            await communicator.send_to(bytes_data=b"0stty size\r")
            output, _ = await read_until(communicator, r"\d+ \d+\s")
            if "40 132" in output:
                break
            await asyncio.sleep(0.1)
        await communicator.disconnect(timeout=5)
        return output

    # tmux keeps one row for its status line.
    assert "40 132" in run(session())


def test_browser_supplied_auth_token_is_replaced(running_project, user):
    communicator = terminal_communicator(running_project.pk, cookie=session_cookie(user))

    async def session():
        await communicator.connect()
        await communicator.send_to(bytes_data=b'{"AuthToken": "YWdlbnQ6d3Jvbmc=", "columns": 80, "rows": 24}')
        await read_until(communicator, PROMPT)
        await communicator.send_to(bytes_data=b"0echo $((40+2))\r")
        output, _ = await read_until(communicator, "\n42")
        await communicator.disconnect(timeout=5)
        return output

    assert "\n42" in run(session())


def test_authenticated_init_frame_carries_only_the_proxy_token():
    frame = consumers.authenticated_init_frame(b'{"AuthToken": "browser", "columns": 80, "rows": 24}', "proxy")

    assert json.loads(frame) == {"columns": 80, "rows": 24, "AuthToken": "proxy"}


def test_reconnecting_to_a_session_returns_to_the_same_shell(running_project, user):
    cookie = session_cookie(user)

    async def session(command, expect):
        communicator = terminal_communicator(running_project.pk, cookie=cookie, session="work")
        await communicator.connect()
        await communicator.send_to(bytes_data=b'{"columns": 80, "rows": 24}')
        await read_until(communicator, PROMPT)
        await communicator.send_to(bytes_data=b"0" + command + b"\r")
        output, _ = await read_until(communicator, expect)
        await communicator.disconnect(timeout=5)
        return output

    run(session(b"MARK=$((3*5)); echo set", "\nset"))
    assert "\nmark=15" in run(session(b"echo mark=$MARK", "\nmark=15"))
    assert TerminalSession.objects.filter(session_name="work").count() == 2


def test_upstream_closing_gives_the_browser_4502(running_project, user):
    communicator = terminal_communicator(running_project.pk, cookie=session_cookie(user))
    spec = build_spec(Sandbox.objects.get(project=running_project))

    async def session():
        await communicator.connect()
        await communicator.send_to(bytes_data=b'{"columns": 80, "rows": 24}')
        await read_until(communicator, PROMPT)
        await communicator.send_to(bytes_data=b"0echo ready\r")
        await read_until(communicator, "\nready")
        from asgiref.sync import sync_to_async

        await sync_to_async(get_sandbox_backend().stop)(spec)
        while True:
            message = await communicator.receive_output(10)
            if message["type"] == "websocket.close":
                await communicator.wait(5)
                return message["code"]

    assert run(session()) == 4502
    assert TerminalSession.objects.get().close_code == 4502


@override_settings(ALLOWED_HOSTS=["platform.example"], CSRF_TRUSTED_ORIGINS=["https://app.example"])
def test_origin_rules():
    assert origin_allowed("https://platform.example", "platform.example")
    assert origin_allowed("https://platform.example:443", "platform.example")
    assert origin_allowed("http://platform.example:8000", "platform.example:8000")
    assert origin_allowed("https://app.example", "platform.example")
    assert not origin_allowed("https://platform.example:8443", "platform.example")
    assert not origin_allowed("https://evil.example", "platform.example")
    assert not origin_allowed("https://evil.example", "evil.example")  # Host not an allowed host
    assert not origin_allowed("null", "platform.example")
    assert not origin_allowed(None, "platform.example")
    assert not origin_allowed("https://platform.example", None)


def test_an_outbound_proxy_in_the_environment_never_sees_the_terminal(running_project, user, monkeypatch):
    """HTTPS_PROXY and friends are for calls to the outside; the relay's upstream is the platform's
    own sandbox, and its handshake carries the terminal credential."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def proxy():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            accepted.append(connection.recv(4096))
            connection.close()

    thread = threading.Thread(target=proxy, daemon=True)
    thread.start()
    proxy_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy_url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    communicator = terminal_communicator(running_project.pk, cookie=session_cookie(user))

    async def session():
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_to(bytes_data=b'{"columns": 80, "rows": 24}')
        await communicator.send_to(bytes_data=b"0echo proxied-$((2+3))\r")
        output, _ = await read_until(communicator, "proxied-5")
        await communicator.disconnect(code=1000, timeout=5)
        return output

    try:
        assert "proxied-5" in run(session())
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert accepted == []
