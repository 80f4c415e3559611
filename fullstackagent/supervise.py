"""Child processes run until a stop is asked for or one of them ends: `make run`'s launcher and the
web server (fullstackagent.serve) both supervise this way."""

import os
import signal
import subprocess
import time


def wait_for_stop_or_exit(children: list[subprocess.Popen], interval: float = 0.2) -> subprocess.Popen | None:
    """Blocks until SIGTERM or SIGINT arrives (returns None) or a child ends (returns it)."""
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    while not stopping:
        for child in children:
            if child.poll() is not None:
                return child
        time.sleep(interval)
    return None


def stop(children: list[subprocess.Popen], *, process_groups: bool = False, timeout: float = 15.0) -> None:
    """SIGTERM to each child still running (to its whole process group with ``process_groups``),
    then SIGKILL to any that has not ended within ``timeout`` seconds."""

    def send(child, signum):
        if process_groups:
            os.killpg(child.pid, signum)
        else:
            child.send_signal(signum)

    for child in children:
        if child.poll() is None:
            send(child, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            send(child, signal.SIGKILL)
            child.wait()
