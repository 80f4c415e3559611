"""The sandbox backend interface, shared by the local and the Kubernetes backends.

The reconcile engine builds a ``SandboxSpec`` from the database (the backend never touches models)
and calls one method per step, outside any transaction. Every method is idempotent: calling it
twice, or after a crash half-way through, converges to the same infrastructure. Methods raise
``fullstackagent.backends.RetryableError`` or ``PermanentError``; anything else counts as retryable.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import BinaryIO, Mapping, Protocol

from fullstackagent.backends import Owner


class SandboxPhase(str, Enum):
    """What the backend sees, before the engine maps it to a ResourceStatus."""

    MISSING = "missing"  # nothing exists (never created, or fully deleted)
    STARTING = "starting"  # exists, not serving yet (process booting, pod not ready, rolling)
    RUNNING = "running"  # serving the terminal with the environment it reports
    STOPPING = "stopping"  # scaled to zero / signalled, something still runs
    STOPPED = "stopped"  # exists (workspace, volume), nothing runs
    FAILED = "failed"  # exists but cannot run (crash loop, image pull error); see message


@dataclass(frozen=True)
class SandboxSpec:
    sandbox_id: int
    name: str  # `<k8s project name>-agentruntime-<6>`: valid DNS label
    project_id: int
    project_name: str  # as the user typed it
    project_k8s_name: str
    namespace: str  # empty for the local backend; the kubeconfig's namespace once known
    owner: Owner
    # The complete environment the sandbox must run with, TTYD_ACCESS_TOKEN and DATABASE_URL included.
    environment: Mapping[str, str]
    environment_hash: str  # sha256 of the canonical environment; see sandboxes.environment
    # What this backend stored last time (pids, ports, generations); never trusted blindly.
    runtime_state: Mapping = field(default_factory=dict)
    # The user asked to start again with an empty home after the old one was found gone.
    recreate_workspace: bool = False
    # Kubernetes: the pod's limits, from the owner's quota (identities.UserQuota).
    cpu_limit: str = "2"
    memory_limit: str = "4Gi"


@dataclass
class SandboxObservation:
    phase: SandboxPhase
    # The hash of the environment the running sandbox actually has ("" when unknown/not running).
    applied_environment_hash: str = ""
    public_url: str = ""  # the user's app (port 3000)
    ttyd_url: str = ""  # the terminal upstream, for operators; never shown to a browser
    app_upstream: str = ""  # http://host:port where the platform's preview proxy reaches the app
    namespace: str = ""
    message: str = ""  # why FAILED / what is being waited on
    runtime_state: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TerminalUpstream:
    """How the platform's terminal proxy reaches ttyd; the browser sees none of it."""

    url: str  # ws://host:port/ws (ttyd's websocket path)
    # ttyd's credential as its `AuthToken` JSON field expects it: base64("user:password").
    # Kept out of repr so no log line or traceback that prints an upstream shows the token.
    auth_token: str = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # e.g. Authorization: Basic ..
    subprotocols: tuple[str, ...] = ("tty",)


class SandboxBackend(Protocol):
    def create(self, spec: SandboxSpec) -> SandboxObservation:
        """Make the sandbox exist and run with ``spec.environment`` (re-creating missing parts)."""

    def start(self, spec: SandboxSpec) -> SandboxObservation:
        """Run a stopped sandbox again with its kept workspace; create missing parts."""

    def stop(self, spec: SandboxSpec) -> SandboxObservation:
        """Stop every process, keep the workspace/volume."""

    def delete(self, spec: SandboxSpec) -> SandboxObservation:
        """Remove everything, workspace/volume included. MISSING when done."""

    def observe(self, spec: SandboxSpec) -> SandboxObservation:
        """Read the actual state; changes nothing."""

    def apply_environment(self, spec: SandboxSpec) -> SandboxObservation:
        """Give the running sandbox ``spec.environment``, removals included, without a restart: new
        shells read it (runtime/environment.sh); running processes keep theirs until restart()."""

    def restart(self, spec: SandboxSpec) -> SandboxObservation:
        """End every process and start the sandbox again (a pod roll), keeping its home."""

    def busy(self, spec: SandboxSpec) -> bool | None:
        """Whether the sandbox's processes are working since the last call (the agent using CPU,
        or a process the user ran with ``keep-awake``): the idle stop spares it. None when the
        backend cannot tell (then only terminal and preview traffic count)."""

    def terminal_upstream(self, spec: SandboxSpec) -> TerminalUpstream:
        """Where the terminal proxy connects, with the credentials it adds. The proxy appends
        ``?arg=<session name>`` to the URL: the sandbox's terminal command (runtime/terminal-session.sh)
        takes it as the tmux session to attach to."""

    def upload_file(self, spec: SandboxSpec, directory: str, filename: str, content: BinaryIO) -> str:
        """Write a file into ``directory`` (absolute, inside the workspace) and return its path."""

    def terminal_cwd(self, spec: SandboxSpec, session_name: str) -> str:
        """The current directory of the named terminal session's shell (for uploads)."""
