"""python -m fullstackagent.server.serve: several web processes (uvicorn) on one port, stopped together.

Each test runs the real command against this run's test database and Redis, and looks at its
processes and sockets through /proc (Linux, like the SO_REUSEPORT the command relies on).
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fullstackagent.devtools import embedded
from fullstackagent.testing.processes import PROJECT_ROOT, fork_server, platform_process_environment

SERVE = [sys.executable, "-m", "fullstackagent.server.serve"]


class Serve:
    """One `python -m fullstackagent.server.serve --processes 2` on a free port, its output in a log file."""

    def __init__(self, log_path: Path, extra_args=(), **environment):
        self.port = embedded.free_port()
        self.log_path = log_path
        self.log = open(log_path, "w")
        # Forked from the tests' fork server, in a session of its own: its web processes share its
        # process group, so the teardown can end them all.
        self.process = fork_server().start(
            [SERVE[2], "--host", "127.0.0.1", "--port", str(self.port), "--processes", "2", *extra_args],
            platform_process_environment(**environment), PROJECT_ROOT, log_path,
        )
        self.pid = self.process.pid

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_until_serving(self) -> None:
        """Until both web processes run (each logs that it listens) and /healthz answers."""
        deadline = time.monotonic() + 30
        while not (self.output().count(f"web process serving http://127.0.0.1:{self.port}") == 2 and healthz(self.port)[0] == 200):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"fullstackagent.server.serve did not start:\n{self.output()[-4000:]}")
            time.sleep(0.1)

    def wait_for_exit(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"fullstackagent.server.serve still running after {timeout}s:\n{self.output()[-4000:]}")

    def end(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def serve(db, tmp_path):
    """A started (and serving) fullstackagent.server.serve with two web processes; ended after the test."""
    own_backends = database_backends()  # this process's (its connection pool's)
    server = Serve(tmp_path / "serve.log")
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.end()
        _wait_for_backends_to_end(own_backends)
        print(f"--- serve log ---\n{server.output()[-6000:]}")


def database_backends() -> set[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return {pid for (pid,) in cursor.fetchall()}


def _wait_for_backends_to_end(keep: set[int], timeout: float = 10.0) -> None:
    """PostgreSQL ends a backend a moment after its client exits; the test database cannot be
    dropped at the end of the run while the web processes' backends linger."""
    deadline = time.monotonic() + timeout
    while database_backends() - keep and time.monotonic() < deadline:
        time.sleep(0.05)


def healthz(port: int) -> tuple[int | None, bytes]:
    """GET /healthz on a fresh connection: (status, body), or (None, b"") when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        return response.status, response.read()
    except OSError:
        return None, b""
    finally:
        connection.close()


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from its third field (state) on, or None for a process that is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2:].split()


def children_of(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and fields[1] == str(pid) and fields[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)


def command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time): tells a process from a later one given the same pid."""
    fields = _stat_fields(pid)
    return (pid, fields[19]) if fields else None


def still_exists(process_identity: tuple[int, str]) -> bool:
    """Running, or exited but not yet waited for (a zombie): serve waits for its web processes."""
    return identity(process_identity[0]) == process_identity


def listening_sockets(port: int) -> set[str]:
    """Inodes of the sockets listening on 127.0.0.1:<port> (LISTEN is state 0A in /proc/net/tcp)."""
    local = f"0100007F:{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == "0A":
            inodes.add(fields[9])
    return inodes


def sockets_held_by(pid: int) -> set[str]:
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            held.add(target[len("socket:["):-1])
    return held


def test_many_fresh_connections_are_all_answered(serve):
    # The kernel spreads new connections over the two SO_REUSEPORT sockets by their addresses: were
    # either web process not serving its socket, about half of these would go unanswered.
    answers = [healthz(serve.port) for _ in range(40)]

    assert [status for status, _ in answers] == [200] * 40
    assert {json.loads(body)["status"] for _, body in answers} == {"ok"}


def test_two_web_processes_each_listen_on_their_own_socket_of_the_port(serve):
    children = children_of(serve.pid)
    listening = listening_sockets(serve.port)

    assert len(children) == 2
    for child in children:
        # Forked from serve with the platform loaded (no program run anew), and serving.
        assert command_line(child) == command_line(serve.pid)
        assert f"Started server process [{child}]" in serve.output()
    assert len(listening) == 2
    # Each web process holds one of the two SO_REUSEPORT sockets; serve closed its own copies.
    assert sorted(len(sockets_held_by(child) & listening) for child in children) == [1, 1]
    assert sockets_held_by(children[0]) & sockets_held_by(children[1]) & listening == set()
    assert sockets_held_by(serve.pid) & listening == set()


def _get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_requests_are_logged_a_line_each_only_when_asked(serve, tmp_path):
    """Issue 17: the server's access log line and Django's "Not Found" warning cost a 404 about 15 %
    of its CPU; off by default, WEB_ACCESS_LOG and REQUEST_LOG_LEVEL bring them back."""
    requests = {"ok": "/healthz?probe=quiet", "api 404": "/api/no-such-route-quiet", "page 404": "/no-such-page-quiet"}
    statuses = [_get(serve.port, path) for path in requests.values()]
    # The same requests against a server asked to log them; its lines arrive within a moment.
    loud = Serve(tmp_path / "loud.log", WEB_ACCESS_LOG="true", REQUEST_LOG_LEVEL="WARNING")
    try:
        loud.wait_until_serving()
        loud_requests = {name: path.replace("quiet", "loud") for name, path in requests.items()}
        for path in loud_requests.values():
            _get(loud.port, path)
        deadline = time.monotonic() + 10
        while not all(path in loud.output() for path in loud_requests.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        loud_output = loud.output()
    finally:
        loud.end()

    assert statuses == [200, 404, 404]
    assert '"GET ' + loud_requests["ok"] + ' HTTP/1.1" 200' in loud_output  # the access log line
    assert "Not Found: " + loud_requests["api 404"] in loud_output  # Django's warning
    assert "Not Found: " + loud_requests["page 404"] in loud_output
    # By default, neither: the quiet server answered the same requests without a line for them.
    time.sleep(0.5)
    assert [path for path in requests.values() if path in serve.output()] == []


def _restarted(serve, victim, survivor):
    """Until serve runs two web processes again, the survivor and a new one; returns the new one."""
    deadline = time.monotonic() + 15
    while True:
        children = children_of(serve.pid)
        if len(children) == 2 and victim not in children and survivor in children:
            replacement = (set(children) - {survivor}).pop()
            if len(listening_sockets(serve.port)) == 2 and healthz(serve.port)[0] == 200:
                return replacement
        if serve.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no web process replaced {victim}:\n{serve.output()[-4000:]}")
        time.sleep(0.05)


@pytest.mark.parametrize("kill_signal, described", [(signal.SIGKILL, "signal 9"), (signal.SIGTERM, "code 0")])
def test_a_web_process_that_exits_is_restarted_while_the_other_keeps_serving(serve, kill_signal, described):
    """Issue 13: one crashed web process does not take the web server down (before, serve stopped
    the other web process and exited, leaving the restart to whatever supervised it)."""
    victim, survivor = children_of(serve.pid)
    survivor_identity = identity(survivor)

    os.kill(victim, kill_signal)
    replacement = _restarted(serve, victim, survivor)

    assert f"web process (pid {victim}) exited with {described}; restarting it in 1 s" in serve.output()
    assert f"web process restarted (pid {replacement})" in serve.output()
    assert still_exists(survivor_identity)  # never stopped
    assert serve.process.poll() is None
    # The new web process holds a new socket of the port; serve still holds none.
    assert len(sockets_held_by(replacement) & listening_sockets(serve.port)) == 1
    assert sockets_held_by(serve.pid) & listening_sockets(serve.port) == set()
    assert [status for status, _ in (healthz(serve.port) for _ in range(20))] == [200] * 20


def test_a_web_process_that_keeps_failing_makes_serve_give_up_and_exit_1(db, tmp_path):
    # An option the web process refuses: every start exits at once with code 2.
    server = Serve(
        tmp_path / "serve.log", extra_args=["--", "--no-such-option"],
        SUPERVISE_BACKOFF_SECONDS="0.05", SUPERVISE_RESTART_LIMIT="3",
    )
    try:
        code = server.wait_for_exit(timeout=30)
    finally:
        server.end()

    assert code == 1
    assert "exited with code 2, 3 times in a row; giving up: stopping everything" in server.output()
    # The web process given up on was restarted twice first (the other one as often, or once less).
    assert server.output().count("restarting it in 0.05 s") + server.output().count("restarting it in 0.1 s") >= 2
    assert not embedded.port_open(server.port)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_requested_stop_ends_every_web_process_and_exits_0(serve, stop_signal):
    children = [identity(child) for child in children_of(serve.pid)]
    assert len(children) == 2

    os.kill(serve.pid, stop_signal)
    code = serve.wait_for_exit(timeout=20)

    assert code == 0
    assert [child for child in children if still_exists(child)] == []
    assert listening_sockets(serve.port) == set()
    assert "stopping the others" not in serve.output()


def test_a_platform_that_cannot_be_loaded_stops_serve_at_once_with_the_error():
    """serve loads the platform before it forks any web process: a broken platform is one error and
    exit 1, not every web process failing in turn until the supervisor gives up (15 s of backoff)."""
    port = embedded.free_port()

    result = subprocess.run(
        [*SERVE, "--host", "127.0.0.1", "--port", str(port), "--processes", "2"],
        cwd=PROJECT_ROOT,
        env=platform_process_environment(DJANGO_SETTINGS_MODULE="fullstackagent.no_such_settings"),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'fullstackagent.no_such_settings'" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "fullstackagent.server.serve: the platform could not be loaded (above)"
    )
    assert "web process" not in result.stderr  # none was started
    assert not embedded.port_open(port)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("WEB_PROCESSES", "0", "fullstackagent.server.serve: WEB_PROCESSES=0 is below the minimum 1"),
        ("WEB_PROCESSES", "abc", "fullstackagent.server.serve: WEB_PROCESSES='abc' is not an integer"),
        ("WEB_ACCESS_LOG", "maybe", "fullstackagent.server.serve: WEB_ACCESS_LOG='maybe' is not a boolean"),
        (
            "WEB_GRACEFUL_SHUTDOWN_SECONDS", "-1",
            "fullstackagent.server.serve: WEB_GRACEFUL_SHUTDOWN_SECONDS=-1 is below the minimum 0",
        ),
    ],
)
def test_a_bad_setting_stops_serve_with_a_message_naming_it(name, value, message):
    port = embedded.free_port()

    result = subprocess.run(
        [*SERVE, "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=platform_process_environment(**{name: value}),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert result.stdout == ""
    assert not embedded.port_open(port)


def test_processes_below_one_is_a_usage_error():
    result = subprocess.run(
        [*SERVE, "--port", str(embedded.free_port()), "--processes", "0"],
        cwd=PROJECT_ROOT,
        env=platform_process_environment(),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "python -m fullstackagent.server.serve: error: --processes must be at least 1"


def test_only_runserver_loads_daphne_and_a_web_process_collects_garbage_once_loaded():
    """`manage.py runserver` is daphne's (ASGI: the terminal works in development); nothing else
    loads daphne's app, which imports Twisted and installs its reactor."""
    environment = platform_process_environment()
    runserver = subprocess.run(
        [sys.executable, "manage.py", "runserver", "--help"], cwd=PROJECT_ROOT, env=environment,
        capture_output=True, text=True, timeout=60,
    )
    assert runserver.returncode == 0, runserver.stderr
    assert "--noasgi" in runserver.stdout  # daphne's runserver, not Django's WSGI one

    loaded = subprocess.run(
        [sys.executable, "-c", "import gc, json, sys; from fullstackagent import asgi; "
         "print(json.dumps(['twisted' in sys.modules, 'daphne' in sys.modules, gc.isenabled(), gc.get_freeze_count() > 0]))"],
        cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=60,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout) == [False, False, True, True]
