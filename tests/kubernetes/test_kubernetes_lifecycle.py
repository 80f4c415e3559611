"""A project's whole life on the kubernetes backend, through the real reconcile engine and tasks,
against the stateful fake API server (the test plays the StatefulSet controller and KubeBlocks)."""

import base64

from databases.models import Database
from fullstackagent.status import ProjectStatus, ResourceStatus
from projects import services
from projects.models import Project
from projects.tasks import reconcile_database, reconcile_sandbox
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec
from tests.kubernetes.conftest import (
    CLAIMS,
    CLUSTERS,
    INGRESSES,
    NAMESPACE,
    PODS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    STATEFULSETS,
)

IMAGE = "registry.example.test/fullstackagent/runtime:9.9.9"


def step(row):
    """One reconcile task for the row, run synchronously; returns the refreshed row, which must
    not carry an error (a retried failure would otherwise pass for "still starting")."""
    (reconcile_sandbox if isinstance(row, Sandbox) else reconcile_database)(row.pk)
    row.refresh_from_db()
    assert (row.last_error, row.attempts) == ("", 0)
    return row


def decoded(secret: dict) -> dict:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def labels_for(name: str) -> dict:
    return {
        "cloud.sealos.io/app-deploy-manager": name,
        "project.fullstackagent.io/name": "myblog",
        "app": name,
        "app.kubernetes.io/managed-by": "fullstackagent",
    }


def assert_sandbox_objects(fake, sandbox: Sandbox, environment: dict, environment_hash: str, replicas: int):
    name = sandbox.name
    labels = labels_for(name)
    secret = fake.get(SECRETS, f"{name}-env")
    assert secret["metadata"]["labels"] == labels
    assert secret["metadata"]["annotations"] == {"fullstackagent.io/env-checksum": environment_hash}
    assert secret["type"] == "Opaque"
    assert decoded(secret) == environment

    statefulset = fake.get(STATEFULSETS, name)
    assert statefulset["metadata"]["labels"] == labels
    assert statefulset["metadata"]["annotations"] == {
        "originImageName": IMAGE,
        "deploy.cloud.sealos.io/minReplicas": "1",
        "deploy.cloud.sealos.io/maxReplicas": "1",
        "deploy.cloud.sealos.io/resize": "10Gi",
    }
    spec = statefulset["spec"]
    assert spec["replicas"] == replicas
    assert spec["serviceName"] == f"{name}-service"
    assert spec["selector"] == {"matchLabels": {"app": name}}
    assert spec["updateStrategy"] == {"type": "RollingUpdate"}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Delete", "whenScaled": "Retain"}
    assert spec["volumeClaimTemplates"] == [
        {
            "metadata": {"name": "home", "labels": labels},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
        }
    ]
    template = spec["template"]
    # No checksum of the environment in the template: changing it must not roll the pod. Only the
    # explicit restart's annotation may be there.
    assert template["metadata"]["labels"] == labels
    assert set(template["metadata"].get("annotations", {})) <= {"kubectl.kubernetes.io/restartedAt"}
    pod = template["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["terminationGracePeriodSeconds"] == 10
    assert pod["securityContext"] == {"runAsUser": 1001, "runAsGroup": 1001, "fsGroup": 1001, "runAsNonRoot": True}
    container_security = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": 1001,
        "runAsGroup": 1001,
    }
    env_from = [{"secretRef": {"name": f"{name}-env"}}]
    home = [{"name": "home", "mountPath": "/home/agent"}]
    [seed] = pod["initContainers"]
    assert seed == {
        "name": "seed-home",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/opt/fullstackagent/bin/entrypoint.sh"],
        "env": [{"name": "TTYD_BIN", "value": "/bin/true"}],
        "envFrom": env_from,
        "volumeMounts": home,
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "securityContext": container_security,
    }
    [container] = pod["containers"]
    # No literal environment values anywhere in the pod spec (the original's fault 4).
    assert container == {
        "name": "sandbox",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "app", "containerPort": 3000, "protocol": "TCP"},
            {"name": "terminal", "containerPort": 7681, "protocol": "TCP"},
        ],
        "envFrom": env_from,
        "readinessProbe": {"tcpSocket": {"port": 7681}, "initialDelaySeconds": 1, "periodSeconds": 3, "failureThreshold": 3},
        "resources": {"requests": {"cpu": "20m", "memory": "25Mi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
        # The Secret again, as files the kubelet refreshes, for new shells (runtime/environment.sh).
        "volumeMounts": home + [{"name": "environment", "mountPath": "/opt/fullstackagent/env", "readOnly": True}],
        "securityContext": container_security,
    }
    assert pod["volumes"] == [{"name": "environment", "secret": {"secretName": f"{name}-env", "defaultMode": 0o440}}]
    assert environment["TTYD_ACCESS_TOKEN"] not in str(statefulset)

    service = fake.get(SERVICES, f"{name}-service")
    assert service["metadata"]["labels"] == labels
    assert service["spec"] == {
        "type": "ClusterIP",
        "selector": {"app": name},
        "ports": [
            {"name": "app", "port": 3000, "targetPort": 3000, "protocol": "TCP"},
            {"name": "terminal", "port": 7681, "targetPort": 7681, "protocol": "TCP"},
        ],
    }

    state = sandbox.runtime_state
    for suffix, label_key, port in (("app", "app_host_label", 3000), ("ttyd", "terminal_host_label", 7681)):
        ingress = fake.get(INGRESSES, f"{name}-{suffix}")
        host = f"{state[label_key]}.apps.example.test"
        assert ingress["metadata"]["labels"] == labels
        assert ingress["metadata"]["annotations"] == {
            "nginx.ingress.kubernetes.io/proxy-body-size": "32m",
            "nginx.ingress.kubernetes.io/proxy-buffer-size": "64k",
            "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
            "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
            "nginx.ingress.kubernetes.io/backend-protocol": "HTTP",
        }
        assert ingress["spec"] == {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [host], "secretName": "wildcard-cert"}],
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": f"{name}-service", "port": {"number": port}}},
                            }
                        ]
                    },
                }
            ],
        }


def assert_database_objects(fake, database: Database, replicas: int):
    name = database.name
    labels = labels_for(name)
    assert fake.get(SERVICE_ACCOUNTS, name)["metadata"]["labels"] == labels
    role = fake.get(ROLES, name)
    assert role["metadata"]["labels"] == labels
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
        {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
        {"apiGroups": ["apps.kubeblocks.io"], "resources": ["clusters"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps.kubeblocks.io"], "resources": ["clusters/status"], "verbs": ["get"]},
    ]
    assert "*" not in str(role["rules"])
    binding = fake.get(ROLE_BINDINGS, name)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]

    cluster = fake.get(CLUSTERS, name)
    assert cluster["metadata"]["labels"] == {
        **labels,
        "clusterdefinition.kubeblocks.io/name": "postgresql",
        "clusterversion.kubeblocks.io/name": "postgresql-14.8.0",
    }
    assert cluster["metadata"]["finalizers"] == ["cluster.kubeblocks.io/finalizer"]
    assert cluster["spec"] == {
        "clusterDefinitionRef": "postgresql",
        "clusterVersionRef": "postgresql-14.8.0",
        "terminationPolicy": "Delete",
        "affinity": {"podAntiAffinity": "Preferred", "tenancy": "SharedNode", "topologyKeys": ["kubernetes.io/hostname"]},
        "componentSpecs": [
            {
                "name": "postgresql",
                "componentDefRef": "postgresql",
                "replicas": replicas,
                "serviceAccountName": name,
                "resources": {"requests": {"cpu": "100m", "memory": "102Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
                "volumeClaimTemplates": [
                    {"name": "data", "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "3Gi"}}}}
                ],
            }
        ],
    }


def test_project_lifecycle_on_kubernetes(kubernetes_settings, fake_kubernetes, kube_user):
    fake = fake_kubernetes
    project = services.do_create_project(kube_user, name="My Blog")
    sandbox = Sandbox.objects.get(project=project)
    database = Database.objects.get(project=project)

    # --- the database: created, then RUNNING once KubeBlocks says Running -------------------
    database = step(database)
    assert database.status == ResourceStatus.STARTING
    assert database.k8s_namespace == NAMESPACE
    assert_database_objects(fake, database, replicas=1)
    database = step(database)
    assert database.status == ResourceStatus.STARTING  # no phase yet: KubeBlocks has not looked
    fake.set_cluster_phase(database.name, "Running")
    database = step(database)
    assert database.status == ResourceStatus.RUNNING
    assert database.connection_url == (
        f"postgresql://postgres:s3cret%2Fp%40ss@{database.name}-postgresql.{NAMESPACE}.svc:5432/postgres"
    )

    # --- the sandbox: created with the database URL, RUNNING once its pod is ready -----------
    sandbox = step(sandbox)
    assert sandbox.status == ResourceStatus.STARTING
    spec = build_spec(sandbox)
    assert spec.environment["DATABASE_URL"] == database.connection_url
    assert set(spec.environment) == {"TTYD_ACCESS_TOKEN", "DATABASE_URL", "PROJECT_NAME", "PORT"}
    assert_sandbox_objects(fake, sandbox, dict(spec.environment), spec.environment_hash, replicas=1)
    labels = dict(sandbox.runtime_state)
    assert sorted(labels) == ["app_host_label", "terminal_host_label"]
    assert sandbox.public_url == f"https://{labels['app_host_label']}.apps.example.test"
    assert sandbox.ttyd_url == f"wss://{labels['terminal_host_label']}.apps.example.test/ws"

    writes_before = len(fake.writes())
    sandbox = step(sandbox)
    assert sandbox.status == ResourceStatus.STARTING
    assert len(fake.writes()) == writes_before  # nothing drifted, nothing written
    fake.roll_out(sandbox.name)
    sandbox = step(sandbox)
    assert sandbox.status == ResourceStatus.RUNNING
    assert sandbox.applied_environment_hash == spec.environment_hash
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.RUNNING
    assert sandbox.runtime_state == labels  # the hosts never change

    # --- a variable change rewrites the Secret and rolls nothing: new shells read it ------------
    generation = fake.get(STATEFULSETS, sandbox.name)["metadata"]["generation"]
    template = fake.get(STATEFULSETS, sandbox.name)["spec"]["template"]
    services.do_set_variables(project, [{"key": "API_URL", "value": "https://api.example.test"}])
    sandbox.refresh_from_db()
    assert sandbox.status == ResourceStatus.UPDATING
    sandbox = step(sandbox)
    assert sandbox.status == ResourceStatus.RUNNING  # applied as soon as the Secret is written
    new_spec = build_spec(sandbox)
    assert new_spec.environment["API_URL"] == "https://api.example.test"
    assert_sandbox_objects(fake, sandbox, dict(new_spec.environment), new_spec.environment_hash, replicas=1)
    assert sandbox.applied_environment_hash == new_spec.environment_hash
    assert fake.get(STATEFULSETS, sandbox.name)["metadata"]["generation"] == generation
    assert fake.get(STATEFULSETS, sandbox.name)["spec"]["template"] == template

    # --- removing a variable removes it from the Secret, and rolls nothing either -------------
    services.do_delete_variable(project, "API_URL")
    sandbox = step(Sandbox.objects.get(pk=sandbox.pk))
    sandbox = step(sandbox)
    assert sandbox.status == ResourceStatus.RUNNING
    assert "API_URL" not in decoded(fake.get(SECRETS, f"{sandbox.name}-env"))
    assert decoded(fake.get(SECRETS, f"{sandbox.name}-env")) == dict(spec.environment)
    assert sandbox.applied_environment_hash == spec.environment_hash
    assert fake.get(STATEFULSETS, sandbox.name)["metadata"]["generation"] == generation
    assert fake.get(STATEFULSETS, sandbox.name)["spec"]["template"] == template

    # --- the explicit restart rolls the pod: RUNNING once the new one is ready -----------------
    services.do_restart_project(Project.objects.get(pk=project.pk))
    sandbox = step(Sandbox.objects.get(pk=sandbox.pk))
    assert sandbox.status == ResourceStatus.STARTING
    assert sandbox.restart_requested is False
    rolled = fake.get(STATEFULSETS, sandbox.name)
    assert rolled["metadata"]["generation"] == generation + 1
    assert set(rolled["spec"]["template"]["metadata"]["annotations"]) == {"kubectl.kubernetes.io/restartedAt"}
    sandbox = step(sandbox)
    assert sandbox.status == ResourceStatus.STARTING  # the controller has not acted yet
    assert fake.get(STATEFULSETS, sandbox.name)["metadata"]["generation"] == generation + 1  # no second roll
    fake.roll_out(sandbox.name)
    sandbox = step(sandbox)
    assert sandbox.status == ResourceStatus.RUNNING
    assert sandbox.applied_environment_hash == spec.environment_hash

    # --- stop: replicas 0, the home claim stays ----------------------------------------------
    services.do_stop_project(Project.objects.get(pk=project.pk))
    sandbox = step(Sandbox.objects.get(pk=sandbox.pk))
    assert sandbox.status == ResourceStatus.STOPPING
    assert fake.get(STATEFULSETS, sandbox.name)["spec"]["replicas"] == 0
    fake.roll_out(sandbox.name)
    sandbox = step(sandbox)
    assert sandbox.status == ResourceStatus.STOPPED
    assert fake.get(PODS, f"{sandbox.name}-0") is None
    assert fake.names(CLAIMS) == [f"home-{sandbox.name}-0"]
    database = step(Database.objects.get(pk=database.pk))
    assert database.status == ResourceStatus.STOPPING
    assert fake.get(CLUSTERS, database.name)["spec"]["componentSpecs"][0]["replicas"] == 0
    database = step(database)
    assert database.status == ResourceStatus.STOPPING  # KubeBlocks has not seen the change yet
    fake.set_cluster_phase(database.name, "Stopped")
    database = step(database)
    assert database.status == ResourceStatus.STOPPED
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.STOPPED

    # --- start: replicas 1 again, same hosts, same claim ---------------------------------------
    services.do_start_project(Project.objects.get(pk=project.pk))
    sandbox = step(Sandbox.objects.get(pk=sandbox.pk))
    assert sandbox.status == ResourceStatus.STARTING
    assert_sandbox_objects(fake, sandbox, dict(spec.environment), spec.environment_hash, replicas=1)
    fake.roll_out(sandbox.name)
    sandbox = step(sandbox)
    assert sandbox.status == ResourceStatus.RUNNING
    assert sandbox.runtime_state == labels
    database = step(Database.objects.get(pk=database.pk))
    assert database.status == ResourceStatus.STARTING
    assert_database_objects(fake, database, replicas=1)
    fake.set_cluster_phase(database.name, "Running")
    database = step(database)
    assert database.status == ResourceStatus.RUNNING
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.RUNNING

    # --- delete: every object goes, the volume claim included ---------------------------------
    services.do_delete_project(Project.objects.get(pk=project.pk))
    sandbox = step(Sandbox.objects.get(pk=sandbox.pk))
    assert sandbox.status == ResourceStatus.TERMINATED
    for resource in (STATEFULSETS, SERVICES, INGRESSES, PODS, CLAIMS):
        assert fake.names(resource) == []
    assert fake.names(SECRETS) == [f"{database.name}-conn-credential"]
    database = step(Database.objects.get(pk=database.pk))
    assert database.status == ResourceStatus.TERMINATING  # the KubeBlocks finalizer holds it
    assert fake.get(CLUSTERS, database.name)["metadata"]["deletionTimestamp"]
    assert fake.get(ROLES, database.name) is not None  # kept while the database shuts down
    fake.finish_cluster_deletion(database.name)
    database = step(database)
    assert database.status == ResourceStatus.TERMINATED
    for resource in (CLUSTERS, SERVICE_ACCOUNTS, ROLES, ROLE_BINDINGS, SECRETS):
        assert fake.names(resource) == []
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.TERMINATED
