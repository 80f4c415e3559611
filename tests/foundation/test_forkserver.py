"""fullstackagent.testing.forkserver: the tests' Celery workers are forked from a process with their
libraries loaded; each must still be the program it was asked to be, as if started anew."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fullstackagent.testing.forkserver import ForkServer
from fullstackagent.testing.processes import PROJECT_ROOT, platform_process_environment

PROBE = """
import json, os, sys, time
if sys.argv[1] == "sleep":
    print("sleeping", flush=True)
    time.sleep(60)
print(json.dumps({
    "probe": os.environ.get("PROBE"), "server_only": os.environ.get("SERVER_ONLY"), "cwd": os.getcwd(),
    "argv": sys.argv[1:], "own_session": os.getsid(0) == os.getpid(), "celery_loaded": "celery.bin.celery" in sys.modules,
}))
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture
def fork_server(tmp_path):
    server = ForkServer(tmp_path, {**os.environ, "SERVER_ONLY": "1"})
    yield server
    server.stop()


@pytest.fixture
def program(tmp_path):
    folder = tmp_path / "program"
    folder.mkdir()
    (folder / "probe.py").write_text(PROBE)
    return folder


def test_a_forked_program_runs_with_its_own_arguments_environment_folder_and_session(fork_server, program):
    log = program / "probe.log"

    child = fork_server.start(["probe", "3"], {"PROBE": "asked", "PATH": os.environ["PATH"]}, program, log)

    assert child.wait(timeout=10) == 3
    assert json.loads(log.read_text()) == {
        "probe": "asked",
        "server_only": None,  # the environment is the one asked for, not the server's
        "cwd": str(program),
        "argv": ["3"],
        "own_session": True,
        "celery_loaded": True,  # loaded before the fork
    }


def test_a_killed_program_is_reported_as_killed_by_its_signal(fork_server, program):
    log = program / "sleep.log"
    log.write_text("")  # as PlatformProcess does: the program appends to it
    child = fork_server.start(["probe", "sleep"], {"PATH": os.environ["PATH"]}, program, log)
    deadline = time.monotonic() + 10
    while "sleeping" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)

    assert child.poll() is None
    os.killpg(child.pid, signal.SIGKILL)  # as PlatformProcess.kill: the whole session

    assert child.wait(timeout=10) == -signal.SIGKILL
    assert child.poll() == -signal.SIGKILL


def test_a_library_that_reads_the_settings_while_loading_is_refused(tmp_path):
    """Settings read before the fork would be the server's for every program forked from it,
    whatever environment the program was given."""
    (tmp_path / "reads_settings.py").write_text("from django.conf import settings\nDEBUG = settings.DEBUG\n")
    script = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from fullstackagent.testing import forkserver; "
        "forkserver.PRELOAD.append('reads_settings'); forkserver._preload()"
    )

    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=platform_process_environment(),
        capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "RuntimeError: a module of PRELOAD read Django's settings while loading"
