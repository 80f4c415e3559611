"""The web server: several web processes sharing one port (HTTP and the terminal websockets).

One Python process runs Django on one core at a time (the GIL), so one web process uses one core
whatever the machine has. This starts ``--processes`` of them (default: WEB_PROCESSES, else the
number of CPUs) on one address, each uvicorn serving fullstackagent.asgi
(fullstackagent.server.web_process): each gets its own listening socket bound with SO_REUSEPORT,
and the kernel spreads new connections over them. Nothing is shared in memory between the
processes once they run: sessions, rate limits and uploads live in PostgreSQL, Redis and the state
folder, and a terminal websocket stays on the process that accepted it.

The platform is loaded here, once, and each web process is forked from this process with it
loaded (gunicorn's preload): a web process starts in a few milliseconds of CPU instead of the
0.7 s that importing Django, the apps and uvicorn cost, at each start and each restart, and the
pages of the loaded code are shared until written to. A platform that cannot be loaded (a broken
setting, a missing module) stops this command at once with the error, instead of every web process
failing on its own until the supervisor gives up. Nothing opened at load time is shared with the
web processes: loading opens no connection and starts no thread (each web process opens its own
as requests come); what keeps state per process says so after a fork (fullstackagent.metrics).

If one web process exits, it is started again on a new socket of the same port after a backoff, while
the others keep serving (fullstackagent.server.supervise); one that keeps failing makes this stop the
others and exit 1 (a supervisor, compose or Kubernetes restarts the whole). SIGTERM and SIGINT are
passed on; each web process closes its websockets with 1012 (the terminal page reconnects) and
gives requests in flight a moment to finish.

    python -m fullstackagent.server.serve --host 0.0.0.0 --port 8000 --processes 4
"""

import argparse
import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback

from fullstackagent.server import supervise

PR_SET_PDEATHSIG = 1  # prctl(2)


def _from_environment(read):
    """A setting read by ``read()``; a bad value stops this command with the message naming it."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        return read()
    except ImproperlyConfigured as error:
        raise SystemExit(f"fullstackagent.server.serve: {error}") from None


def default_processes() -> int:
    """WEB_PROCESSES, else one process per CPU."""
    from fullstackagent.config import env_int

    return _from_environment(lambda: env_int("WEB_PROCESSES", os.cpu_count() or 1, minimum=1))


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def _die_with_parent() -> None:
    """In each child before it runs: SIGTERM it should this supervisor die, even by SIGKILL, so no web
    process is left holding the port (Linux; elsewhere a no-op)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def access_log_options() -> list[str]:
    """A line per request only with WEB_ACCESS_LOG. Off by default: the line cost 3-5 % of a small
    API request's CPU (bench/api.py, under daphne), and the requests are counted by /metrics; a load
    balancer or ingress in front keeps its own log."""
    from fullstackagent.config import env_bool

    return ["--access-log"] if _from_environment(lambda: env_bool("WEB_ACCESS_LOG", False)) else []


def graceful_shutdown_options() -> list[str]:
    """WEB_GRACEFUL_SHUTDOWN_SECONDS: how long requests in flight may take after SIGTERM."""
    from fullstackagent.config import env_int
    from fullstackagent.server.web_process import GRACEFUL_SHUTDOWN_SECONDS

    seconds = _from_environment(lambda: env_int("WEB_GRACEFUL_SHUTDOWN_SECONDS", GRACEFUL_SHUTDOWN_SECONDS, minimum=0))
    return ["--graceful-shutdown", str(seconds)]


def preload() -> None:
    """Loads the platform and the server's modules in this process, for the web processes forked
    from it; a platform that cannot be loaded stops this command (exit 1) with its error."""
    try:
        from fullstackagent.server import web_process

        web_process.load()
    except Exception:  # whatever the import raised: its traceback is the message
        traceback.print_exc()
        raise SystemExit("fullstackagent.server.serve: the platform could not be loaded (above)") from None


class ForkedProcess:
    """A web process forked from this one, with the part of subprocess.Popen's interface that
    fullstackagent.server.supervise uses (pid, poll, wait, send_signal)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        # Becomes readable when the process exits: wait() sleeps on it instead of polling.
        self._pidfd = os.pidfd_open(pid)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)  # -N for a signal, as Popen
                os.close(self._pidfd)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise subprocess.TimeoutExpired(f"web process {self.pid}", timeout)
            select.select([self._pidfd], [], [], remaining)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # not yet waited for: the pid is still this process's
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def exit_status(stop: SystemExit) -> int:
    """The status a program ends with on ``stop``, as the interpreter decides it for a program that
    exits that way: its code, 0 for none, or 1 after writing a message code to stderr. For a forked
    process, which ends with os._exit and never reaches the interpreter's own handling."""
    if stop.code is None or isinstance(stop.code, int):
        return stop.code or 0
    print(stop.code, file=sys.stderr)
    return 1


def fork_web_process(sock: socket.socket, extra: list[str]) -> ForkedProcess:
    """A web process serving ``sock``, forked from this process (which has the platform loaded);
    ``extra`` are its options (python -m fullstackagent.server.web_process --help)."""
    supervisor = os.getpid()
    pid = os.fork()
    if pid:
        return ForkedProcess(pid)
    # The web process. It never returns into the caller's code: whatever happens, it exits here.
    code = 1
    try:
        for stop_signal in (signal.SIGTERM, signal.SIGINT):  # this supervisor's handlers are not its
            signal.signal(stop_signal, signal.SIG_DFL)
        _die_with_parent()
        if os.getppid() != supervisor:  # it died before the line above: nobody would stop this one
            raise SystemExit(1)
        from fullstackagent.server import web_process

        code = web_process.main(["--fd", str(sock.fileno()), *extra])
    except SystemExit as stop:
        code = exit_status(stop)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fullstackagent.server.serve",
        description="Serve FullstackAgent's HTTP and websockets with several web processes (uvicorn) on one port.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="web processes (default: WEB_PROCESSES, else the number of CPUs)",
    )
    parser.add_argument(
        "web_process_args", nargs="*",
        help="further options of each web process (python -m fullstackagent.server.web_process --help), after --",
    )
    args = parser.parse_args(argv)
    count = args.processes if args.processes is not None else default_processes()
    if count < 1:
        parser.error("--processes must be at least 1")
    web_process_args = [*access_log_options(), *graceful_shutdown_options(), *args.web_process_args]
    preload()

    def web_process() -> ForkedProcess:
        # A socket of its own, bound anew for each start (SO_REUSEPORT), handed over and closed here:
        # this process holds no listening socket, so a stopped web server leaves the port free.
        sock = listening_socket(args.host, args.port)
        try:
            return fork_web_process(sock, web_process_args)
        finally:
            sock.close()

    children = [supervise.Child("web process", web_process) for _ in range(count)]
    exit_code = 1
    try:
        exit_code = supervise.supervise(children)
    finally:
        supervise.stop_children(children)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
