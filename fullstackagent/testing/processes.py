"""Processes the tests start for real (Celery workers, the platform itself) and polling helpers.
Importable from any test module: `from fullstackagent.testing.processes import wait_for`."""

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings

from fullstackagent.testing.forkserver import ForkServer

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


def database_url_for_tests() -> str:
    """The URL of this run's test database, for processes started by the tests."""
    db = settings.DATABASES["default"]
    return (
        f"postgresql://{quote(db['USER'])}:{quote(db['PASSWORD'])}@{db['HOST']}:{db['PORT']}/{quote(db['NAME'])}"
    )


def platform_process_environment(**extra) -> dict:
    environment = dict(os.environ)
    environment.update(
        DJANGO_SETTINGS_MODULE="fullstackagent.settings",
        DATABASE_URL=database_url_for_tests(),
        DATABASE_TEST_NAME="",
        PYTHONUNBUFFERED="1",
    )
    environment.update({key: str(value) for key, value in extra.items()})
    return environment


_process_numbers = itertools.count(1)
_fork_servers: list[ForkServer] = []


def fork_server() -> ForkServer:
    """This test process's fork server (fullstackagent.testing.forkserver: the Celery workers and web
    servers it starts are forked from it), started at its first use; ``stop_fork_server`` ends it."""
    if not _fork_servers or _fork_servers[-1].process.poll() is not None:
        _fork_servers.append(ForkServer(Path(tempfile.mkdtemp(prefix="fsa-forkserver-")), platform_process_environment()))
    return _fork_servers[-1]


def stop_fork_server() -> None:
    while _fork_servers:
        server = _fork_servers.pop()
        server.stop()
        shutil.rmtree(Path(server.path).parent, ignore_errors=True)


def terminate(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process is still there after ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class PlatformProcess:
    """A platform process (worker, web server) started for a test, its output kept in a log file.
    Its PostgreSQL sessions carry ``application_name`` (libpq's PGAPPNAME), so a test can wait for
    exactly its sessions to end."""

    def __init__(self, module_and_arguments: list[str], log_path: Path, environment: dict):
        self.application_name = f"fsa-test-{os.getpid()}-{next(_process_numbers)}"
        environment = {"PGAPPNAME": self.application_name, **environment}
        self.log_path = log_path
        self.log = open(log_path, "w")
        # `python -m <module> ...`, forked from this process's fork server with its libraries loaded,
        # in a session of its own: a kill reaches the processes it started too (the web server's web
        # processes); local sandboxes detach into sessions of their own.
        self.process = fork_server().start(
            module_and_arguments, platform_process_environment(**environment), PROJECT_ROOT, log_path
        )

    def wait_until(self, ready, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{what} did not start:\n{self.output()[-4000:]}")
            time.sleep(0.1)

    def output(self) -> str:
        return self.log_path.read_text()

    def kill(self) -> None:
        """SIGKILL: no cleanup runs, as in a crashed machine."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


class CeleryWorker(PlatformProcess):
    """A real `celery worker` (with an embedded beat) against this run's test database and Redis."""

    def __init__(
        self, tmp_path: Path, beat: bool = True, concurrency: int = 4, name: str = "w1", environment: dict | None = None
    ):
        command = [
            "celery", "-A", "fullstackagent", "worker",
            "--pool", "threads", "--concurrency", str(concurrency), "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{name}@%h",
        ]
        if beat:
            command += ["--beat", "--schedule", str(tmp_path / f"beat-{name}")]
        # Django's system checks, which Celery runs as each worker starts (a sixth of its start here):
        # the suite starts about fifty workers on the same code, and test_deploy runs the checks.
        environment = {"CELERY_SKIP_CHECKS": "1", **(environment or {})}
        super().__init__(command, tmp_path / f"celery-{name}.log", environment)
        self.wait_until(lambda: "ready." in self.output(), "celery worker")

    def stop(self) -> None:
        """Ends the worker with SIGKILL, as a crashed machine would (which the platform is built to
        survive: test_reconcile_engine). A warm shutdown waited up to a second for the Redis
        transport's BRPOP to time out before the worker exited, at the end of about fifty tests;
        tasks are acknowledged on receipt (CELERY_TASK_ACKS_LATE), so nothing queued for the
        next test is left unacknowledged, and the next test's worker starts on a purged queue."""
        if self.process.poll() is None:
            self.kill()
        self.log.close()


def _close_this_process_pool() -> None:
    from django.db import connection

    # This process's own pooled connections are not the server's and would never end: give them
    # back and close the pool (the next query through Django opens a new one).
    connection.close()
    if connection.pool:
        connection.close_pool()


def end_other_sessions() -> None:
    """Ends every other session on the test database, this process's pool first (the end of a run)."""
    _close_this_process_pool()
    with psycopg.connect(database_url_for_tests(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
    wait_for_connections_to_close(timeout=5)  # a terminated backend takes a moment to exit


def wait_for_connections_to_close(application_name: str | None = None, timeout: float = 10.0) -> None:
    """Waits for the test database's other sessions (those of ``application_name`` only, if given)
    to end: PostgreSQL ends a client's backend a moment after the client exits, and until then the
    test database cannot be dropped ("being accessed by other users")."""
    # The wait polls on a connection of its own, outside the pool: a query through Django would
    # open the pool again, and with it a connection that never ends.
    _close_this_process_pool()
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    parameters = []
    if application_name:
        query += " AND application_name = %s"
        parameters.append(application_name)
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url_for_tests(), autocommit=True) as polling:
        while time.monotonic() < deadline:
            if polling.execute(query, parameters).fetchone()[0] == 0:
                return
            time.sleep(0.05)
    # Not a failure of the test that ran (the next test's flush works with them open), but a
    # process that outlived its test: said in the run's warnings summary.
    warnings.warn(f"sessions of {application_name or 'other clients'} still open {timeout:.0f} s after they should end")


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    """Polls until predicate() is truthy; returns its value or fails with the message."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class PlatformServer(PlatformProcess):
    """The platform's HTTP + websocket server (fullstackagent.server.serve) on a free port, against this run's test
    database and Redis, as `make run` starts it. Used by the browser tests (the ``live_platform``
    fixture) and the tests of the server's behaviour over HTTP."""

    def __init__(self, log_dir: Path, name: str = "web", **environment):
        from fullstackagent.devtools import embedded

        self.port = embedded.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Two web processes behind one port, as production runs one per CPU: a test passes whichever
        # process its requests and websockets land on.
        command = ["fullstackagent.server.serve", "--host", "127.0.0.1", "--port", str(self.port), "--processes", "2"]
        # Links the server makes (previews on <project>.preview.localhost:<port>) use its address.
        environment.setdefault("PUBLIC_URL", self.url)
        super().__init__(command, log_dir / f"{name}.log", environment)
        self.wait_until(lambda: embedded.port_open(self.port), "the web server")
