"""The Kubernetes database backend: a KubeBlocks PostgreSQL cluster per project database, with
its ServiceAccount, Role and RoleBinding (objects: databases.manifests).

Status follows the cluster's phase, as the original system's did, but
only once KubeBlocks has seen the latest spec (``status.observedGeneration``): right after a stop
the cluster still says Running, and the stop would otherwise look done before it started.
"""

import base64
from urllib.parse import quote

from databases import manifests
from databases.backends.base import DatabaseObservation, DatabasePhase, DatabaseSpec
from fullstackagent.backends import RetryableError
from fullstackagent.kubernetes.client import (
    JSON_PATCH,
    KUBEBLOCKS_CLUSTER,
    ROLE,
    ROLE_BINDING,
    SECRET,
    SERVICE_ACCOUNT,
    ClientCache,
    ClusterAccess,
)

# Every PostgreSQL server has this database; KubeBlocks' postgresql addon creates no other, so a
# URL naming it always connects (the app creates its own tables or databases from there).
DATABASE_NAME = "postgres"
DEFAULT_PORT = "5432"

_PHASES = {
    "Running": DatabasePhase.RUNNING,
    "Creating": DatabasePhase.STARTING,
    "Starting": DatabasePhase.STARTING,
    "Stopping": DatabasePhase.STOPPING,
    "Stopped": DatabasePhase.STOPPED,
    "Deleting": DatabasePhase.DELETING,
    "Failed": DatabasePhase.FAILED,
    "Abnormal": DatabasePhase.FAILED,
}


def _component(cluster: dict) -> tuple[int, dict]:
    """(index, spec) of the postgresql component in the cluster's componentSpecs."""
    for index, component in enumerate((cluster.get("spec") or {}).get("componentSpecs") or []):
        if component.get("name") == manifests.POSTGRES_COMPONENT:
            return index, component
    return -1, {}


def cluster_phase(cluster: dict | None) -> tuple[DatabasePhase, str]:
    """(phase, message) of a KubeBlocks Cluster as the API server returned it (None: missing)."""
    if cluster is None:
        return DatabasePhase.MISSING, ""
    metadata = cluster.get("metadata") or {}
    status = cluster.get("status") or {}
    if metadata.get("deletionTimestamp"):
        return DatabasePhase.DELETING, "The database is being deleted."
    desired = _component(cluster)[1].get("replicas", 1)
    if status.get("observedGeneration", 0) < metadata.get("generation", 1):
        waiting = "Waiting for KubeBlocks to act on the latest change."
        return (DatabasePhase.STARTING if desired else DatabasePhase.STOPPING), waiting
    phase = status.get("phase") or ""
    if phase == "Updating":
        return (DatabasePhase.STOPPING if desired == 0 else DatabasePhase.STARTING), ""
    mapped = _PHASES.get(phase, DatabasePhase.STARTING)
    if mapped == DatabasePhase.RUNNING and desired == 0:
        return DatabasePhase.STOPPING, ""
    if mapped == DatabasePhase.FAILED:
        component_status = ((status.get("components") or {}).get(manifests.POSTGRES_COMPONENT)) or {}
        detail = status.get("message") or component_status.get("message") or ""
        if isinstance(detail, dict):
            detail = "; ".join(f"{key}: {value}" for key, value in detail.items())
        return mapped, f"The database cluster is {phase}{': ' + str(detail)[:300] if detail else ''}."
    return mapped, "" if phase else "Waiting for KubeBlocks to pick the cluster up."


def connection_url(secret: dict, cluster: str, namespace: str) -> str:
    """postgresql://user:password@<cluster>-postgresql.<ns>.svc:port/postgres from the
    `<cluster>-conn-credential` Secret (values base64, as in every Secret)."""
    data = secret.get("data") or {}

    def value(key: str) -> str:
        return base64.b64decode(data.get(key) or "").decode()

    username, password = value("username"), value("password")
    if not username or not password:
        return ""
    port = value("port") or DEFAULT_PORT
    host = manifests.database_host(cluster, namespace)
    return f"postgresql://{quote(username, safe='')}:{quote(password, safe='')}@{host}:{port}/{DATABASE_NAME}"


class KubernetesDatabaseBackend:
    """DatabaseBackend on KubeBlocks; one instance per process (clients are cached in it)."""

    poll_interval = 3.0

    def __init__(self, clients: ClientCache | None = None):
        self.clients = clients or ClientCache()

    def _access(self, spec: DatabaseSpec) -> tuple[ClusterAccess, str]:
        access = self.clients.get(spec.owner)
        return access, spec.namespace or access.namespace

    def _ensure_all(self, spec: DatabaseSpec, *, read_first: bool) -> DatabaseObservation:
        access, namespace = self._access(spec)
        labels = manifests.database_labels(spec.name, spec.project_k8s_name)
        account = manifests.service_account(cluster=spec.name, namespace=namespace, labels=labels)
        role = manifests.role(cluster=spec.name, namespace=namespace, labels=labels)
        binding = manifests.role_binding(cluster=spec.name, namespace=namespace, labels=labels)
        # The pod's identity and permissions exist before the cluster that uses them.
        access.ensure(SERVICE_ACCOUNT, account, namespace, mutable={"metadata": {"labels": labels}}, read_first=read_first)
        access.ensure(
            ROLE, role, namespace, mutable={"metadata": {"labels": labels}, "rules": role["rules"]}, read_first=read_first
        )
        # roleRef cannot change after creation; the subjects can.
        access.ensure(
            ROLE_BINDING,
            binding,
            namespace,
            mutable={"metadata": {"labels": labels}, "subjects": binding["subjects"]},
            read_first=read_first,
        )
        # The cluster's spec is not converged beyond its replicas: KubeBlocks fills in fields
        # inside componentSpecs, and a custom resource only takes merge patches, which would
        # replace that list whole.
        cluster = access.ensure(
            KUBEBLOCKS_CLUSTER,
            manifests.kubeblocks_cluster(cluster=spec.name, namespace=namespace, labels=labels),
            namespace,
            mutable=None,
            read_first=read_first,
        )
        cluster = self._scale(access, cluster, 1, namespace)
        return self._observation(spec, access, namespace, cluster)

    def _scale(self, access: ClusterAccess, cluster: dict | None, replicas: int, namespace: str) -> dict | None:
        if cluster is None or (cluster.get("metadata") or {}).get("deletionTimestamp"):
            return cluster
        index, component = _component(cluster)
        if index < 0:
            raise RetryableError(f"The database cluster has no '{manifests.POSTGRES_COMPONENT}' component yet.")
        if component.get("replicas") == replicas:
            return cluster
        # A JSON patch addresses the one field; the test makes a reordered list fail (422)
        # instead of scaling the wrong component.
        path = f"/spec/componentSpecs/{index}"
        operations = [
            {"op": "test", "path": f"{path}/name", "value": manifests.POSTGRES_COMPONENT},
            {"op": "replace", "path": f"{path}/replicas", "value": replicas},
        ]
        name = cluster["metadata"]["name"]
        return access.patch(KUBEBLOCKS_CLUSTER, name, operations, namespace, content_type=JSON_PATCH)

    def _observation(self, spec: DatabaseSpec, access: ClusterAccess, namespace: str, cluster: dict | None) -> DatabaseObservation:
        phase, message = cluster_phase(cluster)
        url = ""
        if phase == DatabasePhase.RUNNING:
            # Credentials are read only once the cluster runs: KubeBlocks writes the Secret
            # while creating, and a half-made cluster's password may not work yet.
            secret = access.read(SECRET, manifests.credentials_secret_name(spec.name), namespace)
            url = connection_url(secret, spec.name, namespace) if secret else ""
            if not url:
                phase, message = DatabasePhase.STARTING, "Waiting for the database credentials."
        return DatabaseObservation(
            phase=phase, connection_url=url, namespace=namespace, message=message, runtime_state=dict(spec.runtime_state)
        )

    def observe(self, spec: DatabaseSpec) -> DatabaseObservation:
        access, namespace = self._access(spec)
        return self._observation(spec, access, namespace, access.read(KUBEBLOCKS_CLUSTER, spec.name, namespace))

    def create(self, spec: DatabaseSpec) -> DatabaseObservation:
        return self._ensure_all(spec, read_first=False)

    def start(self, spec: DatabaseSpec) -> DatabaseObservation:
        return self._ensure_all(spec, read_first=True)

    def stop(self, spec: DatabaseSpec) -> DatabaseObservation:
        access, namespace = self._access(spec)
        cluster = self._scale(access, access.read(KUBEBLOCKS_CLUSTER, spec.name, namespace), 0, namespace)
        return self._observation(spec, access, namespace, cluster)

    def delete(self, spec: DatabaseSpec) -> DatabaseObservation:
        """The cluster first; KubeBlocks removes its pods, volumes and credentials Secret, then
        its finalizer. The pod's permissions go only after that, as the database's shutdown may
        still use them. MISSING once every object is gone."""
        access, namespace = self._access(spec)
        state = dict(spec.runtime_state)
        access.delete(KUBEBLOCKS_CLUSTER, spec.name, namespace)
        if access.read(KUBEBLOCKS_CLUSTER, spec.name, namespace) is not None:
            return DatabaseObservation(
                phase=DatabasePhase.DELETING,
                namespace=namespace,
                message="Waiting for KubeBlocks to delete the database cluster.",
                runtime_state=state,
            )
        permissions = [(ROLE_BINDING, spec.name), (ROLE, spec.name), (SERVICE_ACCOUNT, spec.name)]
        for resource, name in permissions:
            access.delete(resource, name, namespace)
        remaining = [f"{resource.kind} {name}" for resource, name in permissions if access.read(resource, name, namespace) is not None]
        if remaining:
            return DatabaseObservation(
                phase=DatabasePhase.DELETING,
                namespace=namespace,
                message=f"Waiting for {', '.join(remaining)} to be deleted.",
                runtime_state=state,
            )
        return DatabaseObservation(phase=DatabasePhase.MISSING, namespace=namespace, runtime_state=state)
