"""Per-user access to Kubernetes: one API client per (user, kubeconfig), and the few verbs the
backends use on namespaced objects, each idempotent in the way the reconcile engine needs.

Objects travel as plain camelCase dicts (the manifests of manifests.py, the JSON the API server
returns): responses are read with ``_preload_content=False`` and parsed as JSON, so what a test or
a log shows is exactly what the cluster holds.
"""

import hashlib
import json
import shlex
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from fullstackagent.backends import Owner, PermanentError, RetryableError
from fullstackagent.kubernetes.errors import kubernetes_call
from fullstackagent.kubernetes.kubeconfig import Kubeconfig, KubeconfigError, new_api_client, parse_kubeconfig
from fullstackagent.kubernetes.objects import contains

# A few hundred active users per worker process is plenty; a client holds a small connection pool.
CACHE_SIZE = 256
# A kubeconfig's token may be rotated without the text changing hands through us (Sealos renews
# them); rebuilding clients now and then also drops connections to clusters nobody uses anymore.
CACHE_TTL_SECONDS = 15 * 60


def request_timeout() -> tuple[float, float]:
    """(connect, read) seconds for one API call; short, because the engine retries with backoff."""
    seconds = float(settings.KUBERNETES_REQUEST_TIMEOUT_SECONDS)
    return (min(seconds, 5.0), seconds)


@dataclass(frozen=True)
class Resource:
    """One kind of object and where its API methods live."""

    kind: str
    api: type | None  # None for custom resources (CustomObjectsApi)
    method_suffix: str = ""  # e.g. "stateful_set" → create_namespaced_stateful_set
    group: str = ""
    version: str = ""
    plural: str = ""


SECRET = Resource("Secret", k8s.CoreV1Api, "secret")
SERVICE = Resource("Service", k8s.CoreV1Api, "service")
POD = Resource("Pod", k8s.CoreV1Api, "pod")
VOLUME_CLAIM = Resource("PersistentVolumeClaim", k8s.CoreV1Api, "persistent_volume_claim")
SERVICE_ACCOUNT = Resource("ServiceAccount", k8s.CoreV1Api, "service_account")
STATEFUL_SET = Resource("StatefulSet", k8s.AppsV1Api, "stateful_set")
INGRESS = Resource("Ingress", k8s.NetworkingV1Api, "ingress")
ROLE = Resource("Role", k8s.RbacAuthorizationV1Api, "role")
ROLE_BINDING = Resource("RoleBinding", k8s.RbacAuthorizationV1Api, "role_binding")
KUBEBLOCKS_CLUSTER = Resource("Cluster", None, group="apps.kubeblocks.io", version="v1alpha1", plural="clusters")

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ClusterAccess:
    """One user's client and namespace. Every method raises RetryableError/PermanentError
    (fullstackagent.kubernetes.errors) except for the outcomes it names as answers."""

    def __init__(self, kubeconfig: Kubeconfig, api_client: k8s.ApiClient):
        self.kubeconfig = kubeconfig
        self.api_client = api_client
        self.namespace = kubeconfig.namespace
        self.server_host = kubeconfig.server_host

    # --- the verbs ---------------------------------------------------------------------------

    def read(self, resource: Resource, name: str, namespace: str) -> dict | None:
        """The object, or None when it does not exist."""
        with kubernetes_call(f"read the {resource.kind} {name}", namespace):
            try:
                return self._call(resource, "read", namespace, name=name)
            except ApiException as error:
                if error.status == 404:
                    return None
                raise

    def create(self, resource: Resource, manifest: dict, namespace: str) -> tuple[dict, bool]:
        """(object, True) when created; (the existing object, False) when it already existed:
        409 AlreadyExists is success, the caller converges the existing object's spec."""
        name = manifest["metadata"]["name"]
        with kubernetes_call(f"create the {resource.kind} {name}", namespace):
            try:
                return self._call(resource, "create", namespace, body=manifest), True
            except ApiException as error:
                if error.status != 409:
                    raise
        existing = self.read(resource, name, namespace)
        if existing is None:
            # Deleted between our create and our read: the next step creates it again.
            raise RetryableError(f"The {resource.kind} {name} vanished while it was being created; trying again.")
        return existing, False

    def patch(self, resource: Resource, name: str, body, namespace: str, content_type: str = MERGE_PATCH) -> dict | None:
        """The patched object, or None when it does not exist. Built-in kinds get a JSON merge
        patch unless told otherwise (custom resources do not accept strategic merge)."""
        with kubernetes_call(f"update the {resource.kind} {name}", namespace):
            try:
                return self._call(resource, "patch", namespace, name=name, body=body, _content_type=content_type)
            except ApiException as error:
                if error.status == 404:
                    return None
                raise

    def replace(self, resource: Resource, name: str, manifest: dict, namespace: str) -> dict | None:
        """PUT of the whole object (keys left out are removed); None when it does not exist."""
        with kubernetes_call(f"update the {resource.kind} {name}", namespace):
            try:
                return self._call(resource, "replace", namespace, name=name, body=manifest)
            except ApiException as error:
                if error.status == 404:
                    return None
                raise

    def delete(self, resource: Resource, name: str, namespace: str) -> bool:
        """True when a delete was accepted, False when it was already gone (404 is success)."""
        with kubernetes_call(f"delete the {resource.kind} {name}", namespace):
            try:
                self._call(resource, "delete", namespace, name=name, propagation_policy="Background")
                return True
            except ApiException as error:
                if error.status == 404:
                    return False
                raise

    def ensure(self, resource: Resource, manifest: dict, namespace: str, *, mutable: dict | None, read_first: bool) -> dict:
        """Makes the object exist, and makes its ``mutable`` part (a subset of the manifest that
        may change after creation) match when it already existed. Nothing is written when what
        exists already matches, so a repeated step costs reads only.

        ``read_first`` for steps where the object almost always exists (start); create-first for
        a new resource, where it almost never does and 409 means "made by an earlier try"."""
        name = manifest["metadata"]["name"]
        existing = self.read(resource, name, namespace) if read_first else None
        if existing is None:
            existing, created = self.create(resource, manifest, namespace)
            if created:
                return existing
        if mutable is None or contains(existing, mutable):
            return existing
        # JSON merge patch: lists (containers, ports, rules) are replaced whole, so the object
        # ends up exactly as wanted rather than merged with what an older version made.
        patched = self.patch(resource, name, mutable, namespace)
        if patched is None:
            raise RetryableError(f"The {resource.kind} {name} vanished while it was being updated; trying again.")
        return patched

    def exec(self, pod: str, container: str, command: list[str], namespace: str, stdin: BinaryIO | None = None,
             timeout: float = 60.0) -> tuple[int, bytes, bytes]:
        """Runs ``command`` in the container (pods/exec): (exit code, stdout, stderr). ``stdin``
        is streamed, never read whole: uploads may be large."""
        core = k8s.CoreV1Api(self.api_client)
        with kubernetes_call(f"run `{shlex.join(command[:2])}` in the pod {pod}", namespace):
            session = stream(
                core.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                container=container,
                command=command,
                stdin=stdin is not None,
                stdout=True,
                stderr=True,
                tty=False,
                binary=True,
                _preload_content=False,
                _request_timeout=request_timeout(),
            )
            try:
                if stdin is not None:
                    # Frames of 64 KiB: websocket-client sends one frame per call and API servers
                    # cap frame sizes; the command reads an exact byte count, so no EOF is needed
                    # (v4.channel.k8s.io cannot close stdin).
                    while chunk := stdin.read(64 * 1024):
                        session.write_stdin(chunk)
                session.run_forever(timeout=timeout)
                if session.is_open():
                    raise RetryableError(f"The command in the pod {pod} did not finish within {timeout:.0f} s.")
                stdout = session.read_stdout() or b""
                stderr = session.read_stderr() or b""
                return session.returncode, stdout, stderr
            finally:
                session.close()

    # --- dispatch ----------------------------------------------------------------------------

    def _call(self, resource: Resource, verb: str, namespace: str, **kwargs):
        kwargs.setdefault("_request_timeout", request_timeout())
        kwargs["_preload_content"] = False
        if resource.api is None:
            api = k8s.CustomObjectsApi(self.api_client)
            # CustomObjectsApi says "get" where the typed APIs say "read".
            method = getattr(api, f"{'get' if verb == 'read' else verb}_namespaced_custom_object")
            args = [resource.group, resource.version, namespace, resource.plural]
            if "name" in kwargs:
                args.append(kwargs.pop("name"))
            response = method(*args, **kwargs)
        else:
            api = resource.api(self.api_client)
            method = getattr(api, f"{verb}_namespaced_{resource.method_suffix}")
            response = method(namespace=namespace, **kwargs)
        data = response.data if hasattr(response, "data") else response.read()
        return json.loads(data) if data else {}


class ClientCache:
    """Bounded LRU of ClusterAccess keyed by (user id, sha256 of the kubeconfig), with a TTL.

    Keyed by the hash, not the user alone, so a user who saves a new kubeconfig gets a new
    client at once, and the old one ages out. Thread-safe: Celery runs tasks in threads.
    """

    def __init__(self, max_size: int = CACHE_SIZE, ttl_seconds: float = CACHE_TTL_SECONDS):
        self.max_size = max_size
        self.ttl_seconds = ttl_seconds
        self._entries: OrderedDict[tuple, tuple[float, ClusterAccess]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, owner: Owner) -> ClusterAccess:
        if not owner.kubeconfig:
            raise PermanentError("There is no kubeconfig in your settings: add one in Settings, then start the project.")
        key = (owner.user_id, hashlib.sha256(owner.kubeconfig.encode()).hexdigest())
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < self.ttl_seconds:
                self._entries.move_to_end(key)
                return entry[1]
        try:
            kubeconfig = parse_kubeconfig(owner.kubeconfig)
            access = ClusterAccess(kubeconfig, new_api_client(kubeconfig))
        except KubeconfigError as error:
            raise PermanentError(f"{error} Fix the kubeconfig in Settings, then start the project.") from None
        with self._lock:
            self._entries[key] = (now, access)
            self._entries.move_to_end(key)
            # Evicted clients are not closed here: another thread may be using one right now;
            # their pools close when the last reference goes.
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)
        return access
