"""`make run` (python -m fullstackagent.devtools.launcher) keeps the platform up: a killed worker, beat or
web server is restarted while the rest, the users' sandboxes included, keep running; a process
that keeps failing makes the launcher stop everything and exit non-zero with a message."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fullstackagent.devtools import embedded
from fullstackagent.status import ProjectStatus
from fullstackagent.testing.processes import PROJECT_ROOT, platform_process_environment, wait_for, wait_for_connections_to_close
from projects import services
from projects.models import Project
from sandboxes.backends.local import ttyd_processes
from sandboxes.models import Sandbox

LAUNCHER = [sys.executable, "-m", "fullstackagent.devtools.launcher"]


def _children(pid: int) -> dict[str, int]:
    """The launcher's live children by role: web server, worker, beat."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().decode().split("\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[1] != str(pid) or fields[0] == "Z":
            continue
        role = "web" if "fullstackagent.server.serve" in command else "worker" if "worker" in command else "beat" if "beat" in command else None
        if role:
            found[role] = int(entry.name)
    return found


class Launcher:
    def __init__(self, tmp_path: Path, **environment):
        self.port = embedded.free_port()
        # Its processes' PostgreSQL sessions carry this name (libpq's PGAPPNAME, inherited by the web
        # server, worker and beat it starts): the teardown waits for exactly those to end. Waiting for
        # every other session of the test database waited out its 10 s whenever the run's own web
        # server (live_platform) had started in this worker.
        self.application_name = f"fsa-test-launcher-{os.getpid()}-{self.port}"
        self.log_path = tmp_path / "launcher.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [*LAUNCHER, "--port", str(self.port)],
            cwd=PROJECT_ROOT,
            env=platform_process_environment(
                # Metrics files of its own: the launcher empties its folder at start, as `make run`
                # does, and must not empty the one this test run's other processes write to.
                **{"LOCAL_SANDBOX_ROOT": tmp_path / "sandboxes", "WEB_PROCESSES": 1, "RECONCILE_INTERVAL_SECONDS": 1,
                   "PROMETHEUS_MULTIPROC_DIR": tmp_path / "metrics", "PGAPPNAME": self.application_name, **environment}
            ),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text()

    def end(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


@pytest.fixture
def launcher(transactional_db, tmp_path):
    started = []

    def start(**environment):
        started.append(Launcher(tmp_path, **environment))
        return started[-1]

    yield start
    for process in started:
        process.end()
        print(f"--- launcher log ---\n{process.output()[-6000:]}")
        wait_for_connections_to_close(process.application_name)


def _healthy(port: int) -> bool:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def test_killed_worker_beat_and_web_server_are_restarted_and_sandboxes_keep_running(launcher, user):
    platform = launcher(SUPERVISE_BACKOFF_SECONDS="0.2")
    wait_for(lambda: len(_children(platform.process.pid)) == 3 and _healthy(platform.port), timeout=60,
             message="the platform to start")
    project = services.do_create_project(user, name="Survivor")
    wait_for(lambda: Project.objects.get(pk=project.pk).status == ProjectStatus.RUNNING, timeout=30,
             message="the project to run")
    sandbox = Sandbox.objects.get(project=project)
    terminal = ttyd_processes(sandbox.name)
    assert len(terminal) == 1

    for role in ("worker", "beat", "web"):
        before = _children(platform.process.pid)
        os.killpg(before[role], signal.SIGKILL)
        wait_for(
            lambda: _children(platform.process.pid).get(role) not in (None, before[role])
            and len(_children(platform.process.pid)) == 3,
            timeout=20,
            message=f"the {role} to be restarted",
        )
        after = _children(platform.process.pid)
        # Only the killed one changed; the sandbox's terminal never stopped.
        assert {name: pid for name, pid in after.items() if name != role} == {
            name: pid for name, pid in before.items() if name != role
        }
        assert ttyd_processes(sandbox.name) == terminal
    wait_for(lambda: _healthy(platform.port), timeout=30, message="the restarted web server to serve")
    assert "celery worker (pid" in platform.output() and "exited with signal 9; restarting it in 0.2 s" in platform.output()

    # The restarted worker and beat do the work: a stop converges.
    services.do_stop_project(Project.objects.get(pk=project.pk))
    wait_for(lambda: Project.objects.get(pk=project.pk).status == ProjectStatus.STOPPED, timeout=30,
             message="the project to stop")

    os.kill(platform.process.pid, signal.SIGTERM)
    assert platform.process.wait(timeout=60) == 0
    assert platform.output().rstrip().endswith("stopped")


def test_a_process_that_keeps_failing_makes_the_launcher_give_up_with_exit_1(launcher):
    # WEB_PROCESSES=0 makes the web server refuse to start, every time.
    platform = launcher(WEB_PROCESSES=0, SUPERVISE_BACKOFF_SECONDS="0.05", SUPERVISE_RESTART_LIMIT="3")

    assert platform.process.wait(timeout=90) == 1
    output = platform.output()
    assert "exited with code 1, 3 times in a row; giving up: stopping everything" in output
    assert "web server (pid" in output
    assert output.rstrip().endswith("stopped after giving up on a process (see above)")
    assert not embedded.port_open(platform.port)
