"""The Kubernetes objects of one sandbox, as plain dicts (pure functions).

Objects per sandbox `<name>`:
- Secret `<name>-env`: the whole environment; the pod reads it through envFrom at start and, as a
  volume the kubelet refreshes, in every new shell, so no value is ever a literal in a pod spec
  (fault 4) and a change, removals included (fault 7), reaches new shells without a pod roll. Its
  annotation `fullstackagent.io/env-checksum` says which environment it holds.
- StatefulSet `<name>`: one pod, home on a 10Gi claim `home-<name>-0`; a readiness probe on the
  terminal port, so "ready" means the terminal answers (fault 9); the explicit restart sets
  `kubectl.kubernetes.io/restartedAt` on the template, which rolls the pod.
- Service `<name>-service` (3000, 7681); Ingresses `<name>-app` and `<name>-ttyd` on random host
  labels under the ingress domain, with websocket-friendly timeouts.
"""

import base64
import secrets
import string
from typing import Mapping

from fullstackagent.kubernetes.objects import DEPLOY_MANAGER_LABEL, MANAGED_BY, PROJECT_LABEL, label_value

# --- names and labels --------------------------------------------------------------------------

ENV_CHECKSUM_ANNOTATION = "fullstackagent.io/env-checksum"
# What `kubectl rollout restart` sets: a new value rolls the pod (the explicit restart).
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
ENV_VOLUME = "environment"
ENV_MOUNT_PATH = "/opt/fullstackagent/env"  # runtime/environment.sh reads it

HOME = "/home/agent"
SANDBOX_CONTAINER = "sandbox"
APP_PORT = 3000
TERMINAL_PORT = 7681
HOME_VOLUME = "home"
HOME_SIZE = "10Gi"
RUNTIME_UID = 1001  # the image's `agent` user (runtime/Dockerfile)
INGRESS_CLASS = "nginx"
TLS_SECRET = "wildcard-cert"
HOST_LABEL_LENGTH = 12
# Long-lived websockets (the terminal, app dev servers' hot reload) stay open for an hour idle;
# nginx's default of 60 s, and the original's 300 s, cut them.
WEBSOCKET_TIMEOUT_SECONDS = "3600"

_HOST_ALPHABET = string.ascii_lowercase + string.digits


def sandbox_labels(name: str, project_k8s_name: str) -> dict[str, str]:
    """The labels of a sandbox's objects (the original system's names); `app` is also the
    StatefulSet's selector."""
    return {
        DEPLOY_MANAGER_LABEL: label_value(name),
        PROJECT_LABEL: label_value(project_k8s_name),
        "app": label_value(name),
        **MANAGED_BY,
    }


def env_secret_name(name: str) -> str:
    return f"{name}-env"


def service_name(name: str) -> str:
    return f"{name}-service"


def app_ingress_name(name: str) -> str:
    return f"{name}-app"


def terminal_ingress_name(name: str) -> str:
    return f"{name}-ttyd"


def pod_name(name: str) -> str:
    return f"{name}-0"


def home_claim_name(name: str) -> str:
    """The claim the StatefulSet controller makes from the `home` template for pod 0."""
    return f"{HOME_VOLUME}-{name}-0"


def new_host_label() -> str:
    """A random 12-character DNS label starting with a letter (unguessable app and terminal hosts)."""
    return secrets.choice(string.ascii_lowercase) + "".join(
        secrets.choice(_HOST_ALPHABET) for _ in range(HOST_LABEL_LENGTH - 1)
    )


# --- sandbox -------------------------------------------------------------------------------------


def environment_secret(
    *, name: str, namespace: str, labels: dict, environment: Mapping[str, str], environment_hash: str
) -> dict:
    """The sandbox's environment: read at start (envFrom) and, mounted as a volume the kubelet
    refreshes, by every new shell (runtime/environment.sh). Its annotation says which environment it
    holds: a change is applied when the Secret is written, with no pod roll."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": env_secret_name(name),
            "namespace": namespace,
            "labels": labels,
            "annotations": {ENV_CHECKSUM_ANNOTATION: environment_hash},
        },
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in sorted(environment.items())},
    }


def _sandbox_security_context() -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": RUNTIME_UID,
        "runAsGroup": RUNTIME_UID,
    }


def stateful_set(
    *, name: str, namespace: str, labels: dict, image: str, replicas: int, cpu_limit: str = "2", memory_limit: str = "4Gi"
) -> dict:
    env_from = [{"secretRef": {"name": env_secret_name(name)}}]
    home_mount = [{"name": HOME_VOLUME, "mountPath": HOME}]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                # Sealos' app launchpad reads these to show and resize the app.
                "originImageName": image,
                "deploy.cloud.sealos.io/minReplicas": "1",
                "deploy.cloud.sealos.io/maxReplicas": "1",
                "deploy.cloud.sealos.io/resize": HOME_SIZE,
            },
        },
        "spec": {
            "replicas": replicas,
            "serviceName": service_name(name),
            "selector": {"matchLabels": {"app": labels["app"]}},
            "updateStrategy": {"type": "RollingUpdate"},
            "revisionHistoryLimit": 3,
            # Deleting the StatefulSet deletes the home claim; scaling to 0 (stop) keeps it.
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
            "template": {
                # No checksum of the environment here: changing it must not roll the pod (the
                # mounted Secret brings it to new shells). restart() adds RESTARTED_AT_ANNOTATION.
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    # Service links would put every Service of the namespace into the environment.
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": {
                        "runAsUser": RUNTIME_UID,
                        "runAsGroup": RUNTIME_UID,
                        "fsGroup": RUNTIME_UID,
                        "runAsNonRoot": True,
                    },
                    "initContainers": [
                        {
                            # Seeds an empty home (starter template, .bashrc) through the image's own
                            # entrypoint, so there is one seeding code path; TTYD_BIN=/bin/true makes
                            # it exit where it would start the terminal (runtime/README.md).
                            "name": "seed-home",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["/opt/fullstackagent/bin/entrypoint.sh"],
                            "env": [{"name": "TTYD_BIN", "value": "/bin/true"}],
                            "envFrom": env_from,
                            "volumeMounts": home_mount,
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "16Mi"},
                                "limits": {"cpu": "500m", "memory": "256Mi"},
                            },
                            "securityContext": _sandbox_security_context(),
                        }
                    ],
                    "containers": [
                        {
                            "name": SANDBOX_CONTAINER,
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [
                                {"name": "app", "containerPort": APP_PORT, "protocol": "TCP"},
                                {"name": "terminal", "containerPort": TERMINAL_PORT, "protocol": "TCP"},
                            ],
                            "envFrom": env_from,
                            "readinessProbe": {
                                "tcpSocket": {"port": TERMINAL_PORT},
                                "initialDelaySeconds": 1,
                                "periodSeconds": 3,
                                "failureThreshold": 3,
                            },
                            "resources": {
                                "requests": {"cpu": "20m", "memory": "25Mi"},
                                # 2000m / 4096Mi in the original (the default quota), written as
                                # the API server stores them, so a re-read never looks like drift.
                                "limits": {"cpu": cpu_limit, "memory": memory_limit},
                            },
                            "volumeMounts": home_mount
                            + [{"name": ENV_VOLUME, "mountPath": ENV_MOUNT_PATH, "readOnly": True}],
                            "securityContext": _sandbox_security_context(),
                        }
                    ],
                    "volumes": [
                        {
                            "name": ENV_VOLUME,
                            # 0440 and the pod's fsGroup: readable by the sandbox's user only.
                            "secret": {"secretName": env_secret_name(name), "defaultMode": 0o440},
                        }
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": HOME_VOLUME, "labels": labels},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": HOME_SIZE}}},
                }
            ],
        },
    }


def service(*, name: str, namespace: str, labels: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service_name(name), "namespace": namespace, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": labels["app"]},
            "ports": [
                {"name": "app", "port": APP_PORT, "targetPort": APP_PORT, "protocol": "TCP"},
                {"name": "terminal", "port": TERMINAL_PORT, "targetPort": TERMINAL_PORT, "protocol": "TCP"},
            ],
        },
    }


def ingress(*, ingress_name: str, name: str, namespace: str, labels: dict, host: str, port: int) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": ingress_name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                "nginx.ingress.kubernetes.io/proxy-body-size": "32m",
                "nginx.ingress.kubernetes.io/proxy-buffer-size": "64k",
                "nginx.ingress.kubernetes.io/proxy-send-timeout": WEBSOCKET_TIMEOUT_SECONDS,
                "nginx.ingress.kubernetes.io/proxy-read-timeout": WEBSOCKET_TIMEOUT_SECONDS,
                "nginx.ingress.kubernetes.io/backend-protocol": "HTTP",
            },
        },
        "spec": {
            "ingressClassName": INGRESS_CLASS,
            "tls": [{"hosts": [host], "secretName": TLS_SECRET}],
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": service_name(name), "port": {"number": port}}},
                            }
                        ]
                    },
                }
            ],
        },
    }


def ingress_host(item: dict | None) -> str:
    """The first rule's host of an Ingress as the API server returned it ("" when none)."""
    rules = ((item or {}).get("spec") or {}).get("rules") or []
    return (rules[0].get("host") or "") if rules else ""
