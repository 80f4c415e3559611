"""What the backends send validates against the official Kubernetes schema, names and labels are
valid for any project name, and status is read from objects by the documented rules."""

import re

import kubernetes_validate
import pytest
from jsonschema.validators import Draft202012Validator
from referencing import Registry, Resource
from kubernetes_validate.utils import major_minor, schema_contents

from databases import manifests as database_manifests
from databases.backends.base import DatabasePhase
from databases.backends.kubernetes import cluster_phase, connection_url
from fullstackagent.kubernetes import objects as kubernetes_objects
from projects import services
from projects.naming import k8s_project_name, resource_name
from sandboxes.backends.base import SandboxPhase
from sandboxes.backends.kubernetes import statefulset_phase
from sandboxes.kubernetes import manifests
from tests.kubernetes.conftest import CLUSTERS

VERSION = kubernetes_validate.latest_version()
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def sent_manifests(fake) -> list[dict]:
    """Every object the backends created, as the fake stored it, minus what the server adds."""
    objects = []
    for key, item in sorted(fake.objects.items()):
        item = {k: v for k, v in item.items() if k != "status"}
        metadata = {k: v for k, v in item["metadata"].items() if k not in ("uid", "resourceVersion", "generation", "creationTimestamp")}
        objects.append((key, {**item, "metadata": metadata}))
    return objects


def validate_definition(instance, definition_file: str) -> None:
    """Validates part of a custom resource against one definition of the official schema."""
    directory = f"kubernetes-json-schema/v{VERSION}-local-strict"
    schema = schema_contents(f"{directory}/{definition_file}", VERSION)
    definitions = Resource.from_contents(schema_contents(f"{directory}/_definitions.json", VERSION))
    registry = Resource.from_contents(schema) @ (definitions @ Registry())
    Draft202012Validator(schema, registry=registry).validate(instance)


def test_every_manifest_validates_against_the_kubernetes_schema(kubernetes_settings, fake_kubernetes, kube_user):
    from databases.backends.kubernetes import KubernetesDatabaseBackend
    from databases.models import Database
    from databases.reconcile import build_spec as build_database_spec
    from sandboxes.backends.kubernetes import KubernetesSandboxBackend
    from sandboxes.models import Sandbox
    from sandboxes.reconcile import build_spec

    project = services.do_create_project(kube_user, name="Validated Project")
    KubernetesSandboxBackend().create(build_spec(Sandbox.objects.get(project=project)))
    KubernetesDatabaseBackend().create(build_database_spec(Database.objects.get(project=project)))
    objects = sent_manifests(fake_kubernetes)
    kinds = sorted(item["kind"] for _, item in objects)
    assert kinds == ["Cluster", "Ingress", "Ingress", "Role", "RoleBinding", "Secret", "Service", "ServiceAccount", "StatefulSet"]
    for key, item in objects:
        if key[:2] == CLUSTERS:
            continue
        assert kubernetes_validate.validate(item, VERSION, strict=True) == major_minor(VERSION)

    # The KubeBlocks Cluster is a custom resource: the official schema has no definition for it,
    # so its standard parts are validated against theirs (metadata, resources, volume claims).
    [cluster] = [item for key, item in objects if key[:2] == CLUSTERS]
    validate_definition(cluster["metadata"], "objectmeta-meta-v1.json")
    component = cluster["spec"]["componentSpecs"][0]
    validate_definition(component["resources"], "resourcerequirements-v1.json")
    validate_definition(component["volumeClaimTemplates"][0]["spec"], "persistentvolumeclaimspec-v1.json")


def test_schema_validation_is_not_vacuous():
    labels = manifests.sandbox_labels("x-agentruntime-abc123", "x")
    statefulset = manifests.stateful_set(name="x", namespace="n", labels=labels, image="i", replicas=1)
    statefulset["spec"]["template"]["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalaton"] = False
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, VERSION, strict=True)
    with pytest.raises(Exception):
        validate_definition({"limits": {"cpu": 2}, "requets": {}}, "resourcerequirements-v1.json")


@pytest.mark.parametrize("project_name", ["My Blog", "日本語", "Café au lait", "a" * 64, "x-y-z", "Zz9 9 9", "Ünïcödé-näme-ß"])
def test_names_and_label_values_are_valid_for_every_project_name(project_name):
    k8s_name = k8s_project_name(project_name)
    name = resource_name(k8s_name)
    for label in (manifests.sandbox_labels(name, k8s_name) | database_manifests.database_labels(name, k8s_name)).values():
        assert LABEL_VALUE.match(label) and len(label) <= 63
    # Object names: DNS labels; a StatefulSet's pods get `controller-revision-hash: <name>-<10>`,
    # which must stay a valid label value, so the StatefulSet name has at most 52 characters.
    assert len(name) <= 52
    for derived in (
        name,
        manifests.service_name(name),
        manifests.env_secret_name(name),
        manifests.app_ingress_name(name),
        manifests.terminal_ingress_name(name),
        manifests.home_claim_name(name),
        database_manifests.credentials_secret_name(name),
        f"{name}-{database_manifests.POSTGRES_COMPONENT}",
    ):
        assert DNS_LABEL.match(derived) and len(derived) <= 63, derived


def test_label_value_cleans_anything():
    assert kubernetes_objects.label_value("-bad name!-") == "badname"
    assert kubernetes_objects.label_value("a" * 80) == "a" * 63
    assert kubernetes_objects.label_value("") == ""


def test_host_labels_are_random_dns_labels():
    labels = {manifests.new_host_label() for _ in range(50)}
    assert len(labels) == 50
    assert all(re.fullmatch(r"[a-z][a-z0-9]{11}", label) for label in labels)


def statefulset(generation=1, replicas=1, status=None):
    return {
        "metadata": {"name": "s", "generation": generation},
        "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": "s"}}}},
        "status": status or {},
    }


DONE = {"observedGeneration": 2, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "currentRevision": "r2", "updateRevision": "r2"}


@pytest.mark.parametrize(
    "item, expected",
    [
        (None, SandboxPhase.MISSING),
        (statefulset(2, status=DONE), SandboxPhase.RUNNING),
        # The controller has not seen generation 3 yet: the counts describe the old pod.
        (statefulset(3, status=DONE), SandboxPhase.STARTING),
        # Seen, new revision not rolled out yet.
        (statefulset(2, status={**DONE, "currentRevision": "r1"}), SandboxPhase.STARTING),
        (statefulset(2, status={**DONE, "readyReplicas": 0}), SandboxPhase.STARTING),
        (statefulset(3, replicas=0, status=DONE), SandboxPhase.STOPPING),
        (statefulset(3, replicas=0, status={**DONE, "observedGeneration": 3}), SandboxPhase.STOPPING),
        (statefulset(3, replicas=0, status={"observedGeneration": 3, "replicas": 0}), SandboxPhase.STOPPED),
    ],
)
def test_statefulset_phase_honours_observed_generation(item, expected):
    phase, _ = statefulset_phase(item, None)
    assert phase == expected


def test_unrecoverable_pod_states_fail_with_the_reason():
    pod = {"status": {"containerStatuses": [{"name": "sandbox", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}]}}
    assert statefulset_phase(statefulset(2, status={**DONE, "readyReplicas": 0}), pod) == (
        SandboxPhase.FAILED, "The sandbox container cannot start (ImagePullBackOff): not found."
    )
    crashing = {"status": {"containerStatuses": [{
        "name": "sandbox", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 78}},
    }]}}
    assert statefulset_phase(statefulset(2, status={**DONE, "readyReplicas": 0}), crashing) == (
        SandboxPhase.FAILED, "The sandbox refuses its configuration (exit 78): its terminal token is missing or too short."
    )
    crashing["status"]["containerStatuses"][0]["restartCount"] = 1  # maybe a dependency still starting
    assert statefulset_phase(statefulset(2, status={**DONE, "readyReplicas": 0}), crashing)[0] == SandboxPhase.STARTING


def cluster(phase=None, generation=1, observed=1, replicas=1, deleting=False):
    item = {
        "metadata": {"name": "c", "generation": generation},
        "spec": {"componentSpecs": [{"name": "postgresql", "replicas": replicas}]},
        "status": {"observedGeneration": observed, **({"phase": phase} if phase else {})},
    }
    if deleting:
        item["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return item


@pytest.mark.parametrize(
    "item, expected",
    [
        (None, DatabasePhase.MISSING),
        (cluster("Running"), DatabasePhase.RUNNING),
        (cluster("Creating"), DatabasePhase.STARTING),
        (cluster("Updating"), DatabasePhase.STARTING),
        (cluster("Updating", replicas=0), DatabasePhase.STOPPING),
        (cluster("Stopping", replicas=0), DatabasePhase.STOPPING),
        (cluster("Stopped", replicas=0), DatabasePhase.STOPPED),
        (cluster("Deleting"), DatabasePhase.DELETING),
        (cluster("Running", deleting=True), DatabasePhase.DELETING),
        (cluster("Failed"), DatabasePhase.FAILED),
        (cluster("Abnormal"), DatabasePhase.FAILED),
        (cluster(None), DatabasePhase.STARTING),
        # Stop just patched: KubeBlocks still says Running about the old spec.
        (cluster("Running", generation=2, observed=1, replicas=0), DatabasePhase.STOPPING),
    ],
)
def test_cluster_phase_follows_the_reference_mapping(item, expected):
    assert cluster_phase(item)[0] == expected


def test_connection_url_quotes_credentials_and_names_the_postgres_database():
    import base64

    encode = lambda value: base64.b64encode(value.encode()).decode()  # noqa: E731
    secret = {"data": {"username": encode("postgres"), "password": encode("p@ss/w:rd"), "port": encode("5432"), "host": encode("c-postgresql")}}
    assert connection_url(secret, "c", "ns") == "postgresql://postgres:p%40ss%2Fw%3Ard@c-postgresql.ns.svc:5432/postgres"
    assert connection_url({"data": {}}, "c", "ns") == ""
