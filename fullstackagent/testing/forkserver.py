"""Starts the tests' Celery workers and web servers from a process that has their libraries loaded.

A `celery worker` spent about 1.1 s of CPU before it did anything (Python importing Celery, kombu,
redis, psycopg, Django and the rest, then setting Django up), and the suite starts about thirty of
them and about twenty web servers (0.7 s each to load the platform). This process imports those
libraries once, then forks each program on request: it runs from there (`python -m` its module),
in its own session, with the environment, working folder and log file it was asked for, as a
program started anew would (settings are read in the program, from its own environment: nothing
that depends on them is loaded here, which the server checks). Only libraries are loaded before
the fork; no connection is opened and no thread is started.

    python -m fullstackagent.testing.forkserver SOCKET   (started by ForkServer below)

Protocol, one Unix-socket connection per worker: the client sends one JSON line
``{"argv": [...], "env": {...}, "cwd": "...", "log": "..."}``; the server answers ``pid N`` once
forked, then ``exit CODE`` (negative: killed by that signal) when the worker has ended, and closes
the connection. ``ForkedWorker`` is the client's handle, with the parts of subprocess.Popen the
tests use.
"""

import importlib
import json
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fullstackagent.server.serve import exit_status

# What a Celery worker and a web server of the platform import that reads no setting at import time.
PRELOAD = [
    "celery.bin.celery", "celery.apps.worker", "celery.apps.beat", "celery.worker", "celery.worker.consumer",
    "celery.concurrency.thread", "celery.beat", "celery.backends.redis", "kombu.transport.redis", "redis",
    "psycopg", "psycopg_pool", "django.db.models", "django.db.backends.postgresql.base", "django.http",
    "django.urls", "django.template", "django.forms", "django.core.serializers.json", "django.contrib.admin.sites",
    "rest_framework.request", "requests", "cryptography.fernet", "yaml", "prometheus_client", "jwt",
    "uvicorn", "uvloop", "httptools", "websockets", "channels.routing", "channels.sessions", "whitenoise.middleware",
]


def _preload() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    # Settings read here would be this server's, inherited by every program forked from it whatever
    # environment it is given (Django reads them once): a library that reads them at import time
    # (Django REST framework's views do) must not be in PRELOAD.
    from django.conf import settings

    if settings.configured:
        raise RuntimeError("a module of PRELOAD read Django's settings while loading")


def _run_child(request: dict) -> None:
    """In the forked worker: becomes the program asked for, then exits (never returns)."""
    code = 1
    try:
        for handled in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(handled, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        os.setsid()  # its own process group, as start_new_session=True gave it
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[0] = request["cwd"]  # as `python -m` puts the working folder first
        module, *arguments = request["argv"]
        import runpy

        sys.argv = [module, *arguments]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        code = exit_status(stop)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(path: str) -> None:
    _preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    # SIGCHLD wakes the loop through this pipe (signal.set_wakeup_fd), so ended workers are reported
    # at once without polling.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    print("forkserver ready", flush=True)
    while True:
        for key, _ in selector.select():
            if key.fileobj is listener:
                connection, _ = listener.accept()
                request = json.loads(connection.makefile("rb").readline())
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    for descriptor in (listener, connection, *children.values()):
                        descriptor.close()
                    os.close(wake_read)
                    os.close(wake_write)
                    _run_child(request)
                children[pid] = connection
                connection.sendall(f"pid {pid}\n".encode())
            else:
                os.read(wake_read, 4096)
                while children:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                    if pid == 0:
                        break
                    connection = children.pop(pid, None)
                    if connection is not None:
                        try:
                            connection.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
                        except OSError:
                            pass  # the client has gone
                        connection.close()


class ForkedWorker:
    """A worker forked by the fork server: pid, poll, wait, terminate, kill, as subprocess.Popen.
    The worker is the server's child; its end is reported on this connection."""

    def __init__(self, connection: socket.socket):
        self._connection = connection
        self._reader = connection.makefile("rb")
        line = self._reader.readline().decode()
        if not line.startswith("pid "):
            raise RuntimeError(f"the fork server did not start the worker: {line!r}")
        self.pid = int(line.split()[1])
        self.returncode: int | None = None

    def _read_exit(self, timeout: float | None) -> None:
        ready, _, _ = select.select([self._connection], [], [], timeout)
        if ready:
            line = self._reader.readline().decode()
            # An empty line: the server itself ended (the run is over); the worker went with it.
            self.returncode = int(line.split()[1]) if line.startswith("exit ") else -signal.SIGKILL
            self._reader.close()
            self._connection.close()

    def poll(self) -> int | None:
        if self.returncode is None:
            self._read_exit(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._read_exit(timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """A fork server for this test process (``fork_server`` starts one at its first use)."""

    def __init__(self, folder: Path, environment: dict):
        self.path = str(folder / "forkserver.sock")
        self.log_path = folder / "forkserver.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "fullstackagent.testing.forkserver", self.path],
            env=environment, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while "forkserver ready" not in self.log_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the fork server did not start:\n{self.log_path.read_text()[-4000:]}")
            time.sleep(0.02)

    def start(self, argv: list[str], environment: dict, cwd: Path, log_path: Path) -> ForkedWorker:
        """Runs ``python -m argv[0] argv[1:]`` forked from the server, its output appended to ``log_path``."""
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(self.path)
        request = {"argv": argv, "env": environment, "cwd": str(cwd), "log": str(log_path)}
        connection.sendall(json.dumps(request).encode() + b"\n")
        return ForkedWorker(connection)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


if __name__ == "__main__":
    serve(sys.argv[1])
