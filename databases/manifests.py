"""The Kubernetes objects of one database `<cluster>`, as plain dicts (pure functions): a
ServiceAccount, Role and RoleBinding (least privilege, see POSTGRES_POD_RULES) and the KubeBlocks
`Cluster`."""

from fullstackagent.kubernetes.objects import DEPLOY_MANAGER_LABEL, MANAGED_BY, PROJECT_LABEL, label_value


KUBEBLOCKS_API_VERSION = "apps.kubeblocks.io/v1alpha1"
POSTGRES_COMPONENT = "postgresql"
CLUSTER_DEFINITION = "postgresql"
CLUSTER_VERSION = "postgresql-14.8.0"
CLUSTER_FINALIZER = "cluster.kubeblocks.io/finalizer"
DATA_SIZE = "3Gi"

# What the PostgreSQL pod's service account may do, and nothing more: KubeBlocks binds pods to the
# union of its `app.kubernetes.io/required-by: pod` ClusterRoles (deploy/helm/templates/rbac/
# cluster_pod_required_role.yaml in apecloud/kubeblocks). Kept: the lorry sidecar's rules (events,
# its config maps, the cluster it belongs to, pods) and Patroni's (leader election in config maps
# and endpoints, labelling its pods). Left out: backup rules (no backups are configured) and node
# reads, which a namespaced Role cannot grant (volume protection then stays off).
POSTGRES_POD_RULES = [
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
    },
    {
        "apiGroups": [""],
        "resources": ["endpoints"],
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
    },
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
    },
    {"apiGroups": ["apps.kubeblocks.io"], "resources": ["clusters"], "verbs": ["get", "list"]},
    {"apiGroups": ["apps.kubeblocks.io"], "resources": ["clusters/status"], "verbs": ["get"]},
]


def database_labels(cluster: str, project_k8s_name: str) -> dict[str, str]:
    return {
        DEPLOY_MANAGER_LABEL: label_value(cluster),
        PROJECT_LABEL: label_value(project_k8s_name),
        "app": label_value(cluster),
        **MANAGED_BY,
    }


def service_account(*, cluster: str, namespace: str, labels: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": cluster, "namespace": namespace, "labels": labels},
    }


def role(*, cluster: str, namespace: str, labels: dict) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": cluster, "namespace": namespace, "labels": labels},
        "rules": POSTGRES_POD_RULES,
    }


def role_binding(*, cluster: str, namespace: str, labels: dict) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": cluster, "namespace": namespace, "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": cluster},
        "subjects": [{"kind": "ServiceAccount", "name": cluster, "namespace": namespace}],
    }


def kubeblocks_cluster(*, cluster: str, namespace: str, labels: dict, replicas: int = 1) -> dict:
    return {
        "apiVersion": KUBEBLOCKS_API_VERSION,
        "kind": "Cluster",
        "metadata": {
            "name": cluster,
            "namespace": namespace,
            "labels": {
                **labels,
                "clusterdefinition.kubeblocks.io/name": CLUSTER_DEFINITION,
                "clusterversion.kubeblocks.io/name": CLUSTER_VERSION,
            },
            "finalizers": [CLUSTER_FINALIZER],
        },
        "spec": {
            "clusterDefinitionRef": CLUSTER_DEFINITION,
            "clusterVersionRef": CLUSTER_VERSION,
            "terminationPolicy": "Delete",
            "affinity": {
                "podAntiAffinity": "Preferred",
                "tenancy": "SharedNode",
                "topologyKeys": ["kubernetes.io/hostname"],
            },
            "componentSpecs": [
                {
                    "name": POSTGRES_COMPONENT,
                    "componentDefRef": POSTGRES_COMPONENT,
                    "replicas": replicas,
                    "serviceAccountName": cluster,
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "102Mi"},
                        "limits": {"cpu": "1", "memory": "1Gi"},  # 1000m / 1024Mi, canonical
                    },
                    "volumeClaimTemplates": [
                        {
                            "name": "data",
                            "spec": {
                                "accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": DATA_SIZE}},
                            },
                        }
                    ],
                }
            ],
        },
    }


def credentials_secret_name(cluster: str) -> str:
    return f"{cluster}-conn-credential"


def database_host(cluster: str, namespace: str) -> str:
    """The primary's Service, fully qualified so it resolves from any namespace."""
    return f"{cluster}-{POSTGRES_COMPONENT}.{namespace}.svc"


# --- comparing what exists with what we want ------------------------------------------------------
