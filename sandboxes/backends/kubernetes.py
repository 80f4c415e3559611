"""The Kubernetes sandbox backend: one StatefulSet, Secret, Service and two Ingresses per sandbox
in the owner's namespace (objects: sandboxes.kubernetes.manifests).

Every method is one idempotent step (sandboxes.backends.base). Writes are level-based: create
answers 409 with "converge the existing object", delete answers 404 with "already gone", and an
object is only written when what exists differs from what is wanted, so repeated steps cost
reads, not writes, and never bump a StatefulSet's generation for nothing.

Status comes from the StatefulSet and honours ``observedGeneration``: until the controller has
seen the latest spec, its replica counts describe the previous one, and an UPDATING sandbox would
otherwise report RUNNING before its new pod is ready (the original's fault 9).
"""

import base64
import posixpath
import re
from typing import BinaryIO

from django.conf import settings
from django.utils import timezone

from fullstackagent.backends import PermanentError, RetryableError
from fullstackagent.kubernetes.client import (
    INGRESS,
    POD,
    SECRET,
    SERVICE,
    STATEFUL_SET,
    VOLUME_CLAIM,
    ClientCache,
    ClusterAccess,
    Resource,
)
from fullstackagent.kubernetes.objects import contains
from sandboxes.backends.base import SandboxObservation, SandboxPhase, SandboxSpec, TerminalUpstream
from sandboxes.environment import TERMINAL_TOKEN_KEY
from sandboxes.kubernetes import manifests

# ttyd's credential user; runtime/entrypoint.sh runs `ttyd -c agent:$TTYD_ACCESS_TOKEN`.
TERMINAL_USER = "agent"
SESSION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# Container states that will not heal by waiting: the sandbox goes to ERROR with the reason.
FATAL_WAITING_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"}
)
# A crash loop is reported once the container has failed this often (a first crash may be a
# dependency still starting; kubelet's backoff makes later retries minutes apart).
CRASH_LOOP_RESTARTS = 3
# sysexits' EX_CONFIG, with which runtime/entrypoint.sh refuses a bad environment.
EXIT_CONFIG = 78

# Uploads: written next to the target, then renamed, so a half-written file never has the real
# name. `head -c SIZE` ends by itself after SIZE bytes: exec's v4 channel protocol has no way to
# close stdin, so `cat` or `tar -x` would wait for an end of file that never comes.
UPLOAD_SCRIPT = r"""
set -eu
directory=$1 name=$2 size=$3
target="$directory/$name"
partial="$directory/.$name.uploading"
mkdir -p -- "$directory"
if [ -L "$target" ] || { [ -e "$target" ] && [ ! -f "$target" ]; }; then
    echo "A file upload cannot replace a link or a folder." >&2
    exit 3
fi
head -c "$size" > "$partial"
if [ "$(wc -c < "$partial")" -ne "$size" ]; then
    rm -f -- "$partial"
    echo "The upload was cut short." >&2
    exit 4
fi
mv -f -- "$partial" "$target"
"""
UPLOAD_TIMEOUT_SECONDS = 120.0


def _status(item: dict) -> dict:
    return item.get("status") or {}


def statefulset_phase(statefulset: dict | None, pod: dict | None) -> tuple[SandboxPhase, str]:
    """(phase, message) from the StatefulSet and its pod (either may be None). Pure, so every rule
    is tested on plain dicts."""
    if statefulset is None:
        return SandboxPhase.MISSING, ""
    metadata = statefulset.get("metadata") or {}
    spec = statefulset.get("spec") or {}
    status = _status(statefulset)
    if metadata.get("deletionTimestamp"):
        return SandboxPhase.STOPPING, "The sandbox is being deleted."
    desired = spec.get("replicas", 1)
    if status.get("observedGeneration", 0) < metadata.get("generation", 1):
        waiting = "Waiting for the cluster to act on the latest change."
        return (SandboxPhase.STARTING if desired else SandboxPhase.STOPPING), waiting
    current = status.get("replicas", 0)
    if desired == 0:
        if current == 0:
            return SandboxPhase.STOPPED, ""
        return SandboxPhase.STOPPING, "Waiting for the sandbox's pod to stop."
    failure = pod_failure(pod)
    if failure:
        return SandboxPhase.FAILED, failure
    ready = status.get("readyReplicas", 0)
    updated = status.get("updatedReplicas", 0)
    # A rollout is complete when the controller moved currentRevision to updateRevision.
    rolled_out = status.get("currentRevision") == status.get("updateRevision")
    if current == desired and ready == desired and updated == desired and rolled_out:
        return SandboxPhase.RUNNING, ""
    return SandboxPhase.STARTING, pod_waiting_message(pod) or f"{ready} of {desired} pods ready."


def pod_failure(pod: dict | None) -> str:
    """Why the pod cannot run, when waiting will not help; "" otherwise."""
    if pod is None:
        return ""
    status = _status(pod)
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason") or ""
        if reason in FATAL_WAITING_REASONS:
            detail = (waiting.get("message") or "")[:300]
            return f"The sandbox container cannot start ({reason}){': ' + detail if detail else ''}."
        if reason == "CrashLoopBackOff" and container.get("restartCount", 0) >= CRASH_LOOP_RESTARTS:
            exit_code = (((container.get("lastState") or {}).get("terminated")) or {}).get("exitCode")
            if exit_code == EXIT_CONFIG:
                return "The sandbox refuses its configuration (exit 78): its terminal token is missing or too short."
            return f"The sandbox keeps crashing (container '{container.get('name')}', last exit code {exit_code})."
    return ""


def pod_waiting_message(pod: dict | None) -> str:
    """What a pending pod waits for (scheduling, image pull), for the UI while STARTING."""
    for condition in _status(pod or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"The pod cannot be scheduled yet: {(condition.get('message') or condition.get('reason') or '')[:300]}"
    return ""


class KubernetesSandboxBackend:
    """SandboxBackend for Kubernetes; one instance per process (clients are cached in it)."""

    poll_interval = 2.0

    def __init__(self, clients: ClientCache | None = None):
        self.clients = clients or ClientCache()

    # --- where ---------------------------------------------------------------------------------

    def _access(self, spec: SandboxSpec) -> tuple[ClusterAccess, str]:
        access = self.clients.get(spec.owner)
        # Objects stay where they were created, even if the user's kubeconfig now names another
        # namespace; a new sandbox goes to the kubeconfig's.
        return access, spec.namespace or access.namespace

    def _domain(self, access: ClusterAccess) -> str:
        return settings.KUBERNETES_INGRESS_DOMAIN or access.server_host

    def _host_labels(self, spec: SandboxSpec, access: ClusterAccess, namespace: str) -> dict:
        """The app and terminal host labels: kept in runtime_state so they never change; if the
        state was lost, read back from the Ingresses; new random ones for a new sandbox."""
        state = dict(spec.runtime_state)
        for key, ingress_name in (
            ("app_host_label", manifests.app_ingress_name(spec.name)),
            ("terminal_host_label", manifests.terminal_ingress_name(spec.name)),
        ):
            if not state.get(key):
                host = manifests.ingress_host(access.read(INGRESS, ingress_name, namespace))
                state[key] = host.split(".", 1)[0] if host else manifests.new_host_label()
        return state

    def _wanted(self, spec: SandboxSpec, namespace: str, state: dict, replicas: int, domain: str) -> list:
        """(resource, manifest) for every object, in creation order: the Secret before the pod
        that reads it."""
        labels = manifests.sandbox_labels(spec.name, spec.project_k8s_name)
        secret = manifests.environment_secret(
            name=spec.name,
            namespace=namespace,
            labels=labels,
            environment=spec.environment,
            environment_hash=spec.environment_hash,
        )
        statefulset = manifests.stateful_set(
            name=spec.name,
            namespace=namespace,
            labels=labels,
            image=settings.KUBERNETES_RUNTIME_IMAGE,
            replicas=replicas,
            cpu_limit=spec.cpu_limit,
            memory_limit=spec.memory_limit,
        )
        service = manifests.service(name=spec.name, namespace=namespace, labels=labels)
        ingresses = [
            manifests.ingress(
                ingress_name=manifests.app_ingress_name(spec.name),
                name=spec.name,
                namespace=namespace,
                labels=labels,
                host=f"{state['app_host_label']}.{domain}",
                port=manifests.APP_PORT,
            ),
            manifests.ingress(
                ingress_name=manifests.terminal_ingress_name(spec.name),
                name=spec.name,
                namespace=namespace,
                labels=labels,
                host=f"{state['terminal_host_label']}.{domain}",
                port=manifests.TERMINAL_PORT,
            ),
        ]
        return [(SECRET, secret), (STATEFUL_SET, statefulset), (SERVICE, service)] + [(INGRESS, i) for i in ingresses]

    # --- converging ---------------------------------------------------------------------------

    @staticmethod
    def _mutable(resource: Resource, manifest: dict) -> dict:
        """The part of a manifest that may change after creation (a StatefulSet's selector,
        serviceName and volumeClaimTemplates are immutable: patching them is refused)."""
        metadata = {key: manifest["metadata"][key] for key in ("labels", "annotations") if key in manifest["metadata"]}
        if resource is STATEFUL_SET:
            spec = manifest["spec"]
            keep = ("replicas", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy", "revisionHistoryLimit")
            return {"metadata": metadata, "spec": {key: spec[key] for key in keep}}
        if resource is SERVICE:
            return {"metadata": metadata, "spec": {key: manifest["spec"][key] for key in ("selector", "ports")}}
        return {"metadata": metadata, "spec": manifest["spec"]}

    @staticmethod
    def _ensure_secret(access: ClusterAccess, manifest: dict, namespace: str, *, read_first: bool) -> dict:
        """Like ClusterAccess.ensure, but a changed Secret is replaced whole, so removed variables
        disappear (a merge patch only adds and changes keys: the original's fault 7)."""
        name = manifest["metadata"]["name"]
        existing = access.read(SECRET, name, namespace) if read_first else None
        if existing is None:
            existing, created = access.create(SECRET, manifest, namespace)
            if created:
                return existing
        wanted_metadata = {key: manifest["metadata"][key] for key in ("labels", "annotations")}
        if (existing.get("data") or {}) == manifest["data"] and contains(existing.get("metadata"), wanted_metadata):
            return existing
        # The resourceVersion turns a concurrent writer's change into a 409 (retried) rather
        # than a lost update.
        metadata = {**manifest["metadata"], "resourceVersion": existing["metadata"].get("resourceVersion")}
        replaced = access.replace(SECRET, name, {**manifest, "metadata": metadata}, namespace)
        if replaced is None:
            raise RetryableError(f"The Secret {name} vanished while it was being updated; trying again.")
        return replaced

    def _ensure_all(self, spec: SandboxSpec, *, read_first: bool) -> SandboxObservation:
        access, namespace = self._access(spec)
        state = self._host_labels(spec, access, namespace)
        statefulset = secret = None
        for resource, manifest in self._wanted(spec, namespace, state, replicas=1, domain=self._domain(access)):
            if resource is SECRET:
                secret = self._ensure_secret(access, manifest, namespace, read_first=read_first)
                continue
            item = access.ensure(
                resource, manifest, namespace, mutable=self._mutable(resource, manifest), read_first=read_first
            )
            if resource is STATEFUL_SET:
                statefulset = item
        return self._observation(spec, access, namespace, state, statefulset, secret=secret)

    # --- observing -----------------------------------------------------------------------------

    def _observation(self, spec, access, namespace, state, statefulset, *, secret=None) -> SandboxObservation:
        phase, message = statefulset_phase(statefulset, None)
        if phase == SandboxPhase.STARTING and statefulset is not None:
            # Only the pod says why it does not come up (image pull, crash loop, scheduling).
            pod = access.read(POD, manifests.pod_name(spec.name), namespace)
            phase, message = statefulset_phase(statefulset, pod)
        applied = ""
        if phase == SandboxPhase.RUNNING:
            # The running pod has the environment its Secret holds: new shells read the mounted
            # Secret, which the kubelet refreshes within its sync period.
            if secret is None:
                secret = access.read(SECRET, manifests.env_secret_name(spec.name), namespace)
            annotations = ((secret or {}).get("metadata") or {}).get("annotations") or {}
            applied = annotations.get(manifests.ENV_CHECKSUM_ANNOTATION, "")
        domain = self._domain(access)
        app_label = state.get("app_host_label")
        public_url = f"https://{app_label}.{domain}" if app_label and phase != SandboxPhase.MISSING else ""
        return SandboxObservation(
            phase=phase,
            applied_environment_hash=applied,
            public_url=public_url,
            app_upstream=self._app_upstream(spec, namespace, public_url) if phase != SandboxPhase.MISSING else "",
            ttyd_url=self._terminal_url(spec, namespace, state, domain) if phase != SandboxPhase.MISSING else "",
            namespace=namespace,
            message=message,
            runtime_state=state,
        )

    def _app_upstream(self, spec: SandboxSpec, namespace: str, public_url: str) -> str:
        """Where the preview proxy reaches the app: the Service from inside the cluster, else the
        app's Ingress (the same choice as the terminal's, KUBERNETES_TERMINAL_UPSTREAM)."""
        if settings.KUBERNETES_TERMINAL_UPSTREAM == "service":
            return f"http://{manifests.service_name(spec.name)}.{namespace}.svc:{manifests.APP_PORT}"
        return public_url.rstrip("/")

    def _terminal_url(self, spec: SandboxSpec, namespace: str, state: dict, domain: str) -> str:
        if settings.KUBERNETES_TERMINAL_UPSTREAM == "service":
            # From inside the cluster: the Service's DNS name, no TLS, no ingress hop.
            return f"ws://{manifests.service_name(spec.name)}.{namespace}.svc:{manifests.TERMINAL_PORT}/ws"
        label = state.get("terminal_host_label")
        return f"wss://{label}.{domain}/ws" if label else ""

    def observe(self, spec: SandboxSpec) -> SandboxObservation:
        access, namespace = self._access(spec)
        statefulset = access.read(STATEFUL_SET, spec.name, namespace)
        return self._observation(spec, access, namespace, dict(spec.runtime_state), statefulset)

    # --- the lifecycle -------------------------------------------------------------------------

    def create(self, spec: SandboxSpec) -> SandboxObservation:
        return self._ensure_all(spec, read_first=False)

    def start(self, spec: SandboxSpec) -> SandboxObservation:
        return self._ensure_all(spec, read_first=True)

    def stop(self, spec: SandboxSpec) -> SandboxObservation:
        access, namespace = self._access(spec)
        statefulset = access.read(STATEFUL_SET, spec.name, namespace)
        if statefulset is not None and (statefulset.get("spec") or {}).get("replicas") != 0:
            statefulset = access.patch(STATEFUL_SET, spec.name, {"spec": {"replicas": 0}}, namespace)
        return self._observation(spec, access, namespace, dict(spec.runtime_state), statefulset)

    def apply_environment(self, spec: SandboxSpec) -> SandboxObservation:
        """Writes the new Secret; the pod is not rolled (new shells read the mounted Secret).
        Converging the whole StatefulSet also brings back replicas 1 if it was scaled by hand."""
        return self._ensure_all(spec, read_first=True)

    def restart(self, spec: SandboxSpec) -> SandboxObservation:
        """Rolls the pod, as `kubectl rollout restart` does: a new template annotation. The home
        volume stays; the new pod starts with the current Secret."""
        self._ensure_all(spec, read_first=True)
        access, namespace = self._access(spec)
        restarted_at = timezone.now().isoformat(timespec="seconds")
        patch = {"spec": {"template": {"metadata": {"annotations": {manifests.RESTARTED_AT_ANNOTATION: restarted_at}}}}}
        statefulset = access.patch(STATEFUL_SET, spec.name, patch, namespace)
        return self._observation(spec, access, namespace, dict(spec.runtime_state), statefulset)

    def delete(self, spec: SandboxSpec) -> SandboxObservation:
        """Asks for every object to go (404 = already gone), then reports MISSING only when none
        is left: the home claim waits for the pod (pvc-protection), the pod for its shutdown."""
        access, namespace = self._access(spec)
        objects = [
            (STATEFUL_SET, spec.name),
            (INGRESS, manifests.app_ingress_name(spec.name)),
            (INGRESS, manifests.terminal_ingress_name(spec.name)),
            (SERVICE, manifests.service_name(spec.name)),
            (SECRET, manifests.env_secret_name(spec.name)),
            (VOLUME_CLAIM, manifests.home_claim_name(spec.name)),
        ]
        for resource, name in objects:
            access.delete(resource, name, namespace)
        remaining = [
            f"{resource.kind} {name}"
            for resource, name in objects + [(POD, manifests.pod_name(spec.name))]
            if access.read(resource, name, namespace) is not None
        ]
        state = dict(spec.runtime_state)
        if not remaining:
            return SandboxObservation(phase=SandboxPhase.MISSING, namespace=namespace, runtime_state=state)
        return SandboxObservation(
            phase=SandboxPhase.STOPPING,
            namespace=namespace,
            message=f"Waiting for {', '.join(remaining)} to be deleted.",
            runtime_state=state,
        )

    def busy(self, spec: SandboxSpec) -> bool | None:
        """None: this backend cannot tell. Seeing the pod's CPU or its processes' environment would
        take an exec into the pod or a metrics server the user's cluster may not have, on every
        drift check; so on Kubernetes only terminal and preview traffic keep a sandbox awake
        (README, "Idle sandboxes stop")."""
        return None

    # --- the terminal --------------------------------------------------------------------------

    def terminal_upstream(self, spec: SandboxSpec) -> TerminalUpstream:
        token = spec.environment.get(TERMINAL_TOKEN_KEY)
        if not token:
            raise PermanentError("The project has no terminal token.")
        access, namespace = self._access(spec)
        url = self._terminal_url(spec, namespace, dict(spec.runtime_state), self._domain(access))
        if not url:
            raise RetryableError("The sandbox's terminal address is not known yet.")
        # What ttyd checks twice (runtime/README.md "Terminal protocol"): the Basic header on the
        # upgrade and the same credential as AuthToken in the first message.
        auth_token = base64.b64encode(f"{TERMINAL_USER}:{token}".encode()).decode()
        return TerminalUpstream(url=url, auth_token=auth_token, headers={"Authorization": f"Basic {auth_token}"})

    def terminal_cwd(self, spec: SandboxSpec, session_name: str) -> str:
        """The current directory of the shell in tmux session ``session_name`` (the pod's tmux
        server, as runtime/terminal-session.sh starts it), or the home when unknown."""
        if not SESSION_NAME.match(session_name or ""):
            raise PermanentError("That terminal session name is not allowed.")
        access, namespace = self._access(spec)
        code, stdout, _ = access.exec(
            manifests.pod_name(spec.name),
            manifests.SANDBOX_CONTAINER,
            ["tmux", "display-message", "-p", "-t", f"={session_name}:", "#{pane_current_path}"],
            namespace,
            timeout=15.0,
        )
        path = stdout.decode(errors="replace").strip()
        if code == 0 and path.startswith("/"):
            return path
        return manifests.HOME

    def upload_file(self, spec: SandboxSpec, directory: str, filename: str, content: BinaryIO) -> str:
        """Writes ``filename`` into ``directory`` in the pod; both must stay under /home/agent."""
        if not filename or "/" in filename or "\0" in filename or filename in (".", ".."):
            raise PermanentError("That file name is not allowed.")
        if not directory.startswith("/") or "\0" in directory:
            raise PermanentError("Uploads go inside the sandbox's home folder only.")
        directory = posixpath.normpath(directory)
        if directory != manifests.HOME and not directory.startswith(manifests.HOME + "/"):
            raise PermanentError("Uploads go inside the sandbox's home folder only.")
        # The size goes first, on the command line, so the script knows when the file is complete.
        start = content.tell()
        size = content.seek(0, 2) - start
        content.seek(start)
        access, namespace = self._access(spec)
        code, _, stderr = access.exec(
            manifests.pod_name(spec.name),
            manifests.SANDBOX_CONTAINER,
            ["sh", "-c", UPLOAD_SCRIPT, "upload", directory, filename, str(size)],
            namespace,
            stdin=content,
            timeout=UPLOAD_TIMEOUT_SECONDS,
        )
        if code in (3, 4):
            raise PermanentError(stderr.decode(errors="replace").strip())
        if code != 0:
            raise RetryableError(f"Writing the file in the sandbox failed (exit {code}).")
        return posixpath.join(directory, filename)
