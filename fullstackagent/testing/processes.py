"""Processes the tests start for real (Celery workers, the platform itself) and polling helpers.
Importable from any test module: `from fullstackagent.testing.processes import wait_for`."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

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


class PlatformProcess:
    """A platform process (worker, daphne) started for a test, its output kept in a log file."""

    def __init__(self, command: list[str], log_path: Path, environment: dict):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=platform_process_environment(**environment),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            # Its own process group, so a kill reaches the processes it started too (the web
            # server's daphnes); local sandboxes detach into sessions of their own.
            start_new_session=True,
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
            sys.executable, "-m", "celery", "-A", "fullstackagent", "worker",
            "--pool", "threads", "--concurrency", str(concurrency), "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{name}@%h",
        ]
        if beat:
            command += ["--beat", "--schedule", str(tmp_path / f"beat-{name}")]
        super().__init__(command, tmp_path / f"celery-{name}.log", environment or {})
        self.wait_until(lambda: "ready." in self.output(), "celery worker")


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
    """The platform's HTTP + websocket server (daphne) on a free port, against this run's test
    database and Redis, as `make run` starts it. Used by the browser tests (the ``live_platform``
    fixture) and bench/api.py."""

    def __init__(self, log_dir: Path, name: str = "daphne", **environment):
        from fullstackagent.devtools import embedded

        self.port = embedded.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Two daphnes behind one port, as production runs one per CPU: a test passes whichever
        # process its requests and websockets land on.
        command = [
            sys.executable, "-m", "fullstackagent.server.serve", "--host", "127.0.0.1", "--port", str(self.port),
            "--processes", "2",
        ]
        # Links the server makes (previews on <project>.preview.localhost:<port>) use its address.
        environment.setdefault("PUBLIC_URL", self.url)
        super().__init__(command, log_dir / f"{name}.log", environment)
        self.wait_until(lambda: embedded.port_open(self.port), "daphne")
