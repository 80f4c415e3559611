"""Child processes kept running until a stop is asked for: `make run`'s launcher (web server, Celery
worker, beat) and the web server (fullstackagent.server.serve: its web processes) both supervise this way.

A child that exits is started again after a backoff (1, 2, 4 ... s, capped at 30 s), and the others
keep running: a crashed worker must not take the web UI down, and never the users' sandboxes (they
are not children). A child that keeps failing (SUPERVISE_RESTART_LIMIT exits in a row, each within
30 s of its start) is given up on: everything is stopped and the supervisor exits 1 with a message,
so the supervisor above (systemd, compose, Kubernetes) sees a failure. SIGTERM or SIGINT stop
everything and exit 0.

Hand-written rather than supervisord: the children share this process's listening sockets and
environment, `make run` must work with nothing installed, and the policy is these sixty lines.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

# A child that ran this long before exiting was healthy: its failure count starts again.
STABLE_AFTER_SECONDS = 30.0
BACKOFF_MAX_SECONDS = 30.0


def _env_number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SystemExit(f"{name}={raw} is below the minimum {minimum:g}")
    return value


def restart_limit() -> int:
    """Exits in a row (each soon after its start) before the supervisor gives up."""
    return int(_env_number("SUPERVISE_RESTART_LIMIT", 5, 1))


def backoff_base_seconds() -> float:
    return _env_number("SUPERVISE_BACKOFF_SECONDS", 1.0, 0.0)


@dataclass
class Child:
    """One supervised program: ``start`` launches it (again) and returns the process."""

    name: str
    start: Callable[[], subprocess.Popen]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0  # exits in a row, each soon after its start
    restart_at: float | None = None
    restarts: int = field(default=0)

    def launch(self) -> None:
        self.process = self.start()
        self.started_at = time.monotonic()
        self.restart_at = None


def _describe(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"code {code}"


def supervise(children: list[Child], *, interval: float = 0.2, log=None) -> int:
    """Starts every child and keeps them running; returns 0 after SIGTERM/SIGINT, 1 after giving
    up on a child. The children are still running (or stopped) on return: call ``stop``."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    for child in children:
        child.launch()
    limit, base = restart_limit(), backoff_base_seconds()
    while not stopping:
        now = time.monotonic()
        for child in children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    child.launch()
                    log(f"{child.name} restarted (pid {child.process.pid})")
                continue
            code = child.process.poll()
            if code is None:
                continue
            child.failures = 1 if now - child.started_at >= STABLE_AFTER_SECONDS else child.failures + 1
            if child.failures >= limit:
                log(
                    f"{child.name} (pid {child.process.pid}) exited with {_describe(code)}, {child.failures} times "
                    f"in a row; giving up: stopping everything"
                )
                return 1
            delay = min(base * 2 ** (child.failures - 1), BACKOFF_MAX_SECONDS)
            log(f"{child.name} (pid {child.process.pid}) exited with {_describe(code)}; restarting it in {delay:g} s")
            child.restart_at = now + delay
        time.sleep(interval)
    return 0


def stop(processes: list[subprocess.Popen], *, process_groups: bool = False, timeout: float = 15.0) -> None:
    """SIGTERM to each process still running (to its whole process group with ``process_groups``),
    then SIGKILL to any that has not ended within ``timeout`` seconds."""

    def send(process, signum):
        try:
            if process_groups:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)
        except ProcessLookupError:
            pass

    for process in processes:
        if process.poll() is None:
            send(process, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            send(process, signal.SIGKILL)
            process.wait()


def stop_children(children: list[Child], **options) -> None:
    stop([child.process for child in children if child.process is not None], **options)
