"""Every step repeated, and a create that meets 409, leaves exactly one of each object and
converges what exists to what is wanted."""

import copy

from databases.backends.base import DatabasePhase
from databases.backends.kubernetes import KubernetesDatabaseBackend
from databases.reconcile import build_spec as build_database_spec
from databases.models import Database
from projects import services
from sandboxes.backends.base import SandboxPhase
from sandboxes.backends.kubernetes import KubernetesSandboxBackend
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec
from tests.kubernetes.conftest import (
    CLAIMS,
    CLUSTERS,
    INGRESSES,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    STATEFULSETS,
)

SANDBOX_KINDS = (SECRETS, STATEFULSETS, SERVICES, INGRESSES)


def counts(fake, kinds):
    return {kind[1]: len(fake.names(kind)) for kind in kinds}


def with_state(spec, observation):
    return type(spec)(**{**spec.__dict__, "runtime_state": observation.runtime_state, "namespace": observation.namespace})


def test_every_sandbox_step_repeated_leaves_one_of_each(kubernetes_settings, fake_kubernetes, kube_user):
    fake = fake_kubernetes
    project = services.do_create_project(kube_user, name="Shop")
    spec = build_spec(Sandbox.objects.get(project=project))
    backend = KubernetesSandboxBackend()

    first = backend.create(spec)
    spec = with_state(spec, first)
    second = backend.create(spec)
    assert second.runtime_state == first.runtime_state
    assert counts(fake, SANDBOX_KINDS) == {"secrets": 1, "statefulsets": 1, "services": 1, "ingresses": 2}
    # The second create met 409 five times and found nothing to converge: no PATCH, no PUT.
    assert [method for method, _ in fake.writes()].count("POST") == 10
    assert [method for method, _ in fake.writes() if method in ("PATCH", "PUT")] == []
    assert fake.get(STATEFULSETS, spec.name)["metadata"]["generation"] == 1

    fake.roll_out(spec.name)
    assert backend.start(spec).phase == SandboxPhase.RUNNING
    assert backend.start(spec).phase == SandboxPhase.RUNNING
    assert backend.apply_environment(spec).phase == SandboxPhase.RUNNING
    assert [method for method, _ in fake.writes() if method != "POST"] == []

    assert backend.stop(spec).phase == SandboxPhase.STOPPING
    assert backend.stop(spec).phase == SandboxPhase.STOPPING
    assert fake.get(STATEFULSETS, spec.name)["metadata"]["generation"] == 2
    fake.roll_out(spec.name)
    assert backend.stop(spec).phase == SandboxPhase.STOPPED
    assert counts(fake, SANDBOX_KINDS + (CLAIMS,)) == {
        "secrets": 1, "statefulsets": 1, "services": 1, "ingresses": 2, "persistentvolumeclaims": 1
    }

    assert backend.delete(spec).phase == SandboxPhase.MISSING
    assert backend.delete(spec).phase == SandboxPhase.MISSING  # every DELETE answered 404
    assert counts(fake, SANDBOX_KINDS + (CLAIMS,)) == {
        "secrets": 0, "statefulsets": 0, "services": 0, "ingresses": 0, "persistentvolumeclaims": 0
    }
    assert backend.observe(spec).phase == SandboxPhase.MISSING


def test_create_meeting_409_converges_the_existing_objects(kubernetes_settings, fake_kubernetes, kube_user):
    """A half-done earlier attempt (or an older platform version) left objects behind with
    another image, a stale environment and an extra key: create adopts them, one of each."""
    fake = fake_kubernetes
    project = services.do_create_project(kube_user, name="Shop")
    spec = build_spec(Sandbox.objects.get(project=project))
    backend = KubernetesSandboxBackend()
    observation = backend.create(spec)
    spec = with_state(spec, observation)
    statefulset = fake.get(STATEFULSETS, spec.name)
    secret = fake.get(SECRETS, f"{spec.name}-env")
    fake.objects.clear()
    stale = copy.deepcopy(statefulset)
    stale["spec"]["template"]["spec"]["containers"][0]["image"] = "old/image:0.0.1"
    stale["spec"]["replicas"] = 0
    fake.put(STATEFULSETS, stale)
    fake.put(SECRETS, {**secret, "data": {**secret["data"], "REMOVED": "eA=="}})
    fake.requests.clear()

    backend.create(spec)

    assert counts(fake, SANDBOX_KINDS) == {"secrets": 1, "statefulsets": 1, "services": 1, "ingresses": 2}
    converged = fake.get(STATEFULSETS, spec.name)
    assert converged["spec"]["template"]["spec"]["containers"][0]["image"] == kubernetes_settings.KUBERNETES_RUNTIME_IMAGE
    assert converged["spec"]["replicas"] == 1
    assert converged["metadata"]["generation"] == 2
    assert fake.get(SECRETS, f"{spec.name}-env")["data"] == secret["data"]
    patch_types = [ctype for method, path, ctype in fake.requests if method == "PATCH"]
    assert patch_types == ["application/merge-patch+json"]
    assert [(method, path.rsplit("/", 1)[-1]) for method, path, _ in fake.requests if method == "PUT"] == [
        ("PUT", f"{spec.name}-env")
    ]


def test_create_that_timed_out_after_applying_is_not_duplicated(kubernetes_settings, fake_kubernetes, kube_user):
    """The server applied the POST but answered after the client gave up; the retry meets 409."""
    fake = fake_kubernetes
    project = services.do_create_project(kube_user, name="Shop")
    sandbox = Sandbox.objects.get(project=project)
    spec = build_spec(sandbox)
    backend = KubernetesSandboxBackend()
    fake.delay(2.0, method="POST", path="/statefulsets")
    try:
        backend.create(spec)
    except Exception as error:  # noqa: BLE001 - the class is asserted below
        assert type(error).__name__ == "RetryableError"
        assert str(error) == f"The cluster did not answer in time while trying to create the StatefulSet {spec.name}."
    else:
        raise AssertionError("the delayed create did not time out")
    assert fake.names(STATEFULSETS) == [spec.name]
    backend.create(spec)
    assert counts(fake, SANDBOX_KINDS) == {"secrets": 1, "statefulsets": 1, "services": 1, "ingresses": 2}


def test_every_database_step_repeated_leaves_one_of_each(kubernetes_settings, fake_kubernetes, kube_user):
    fake = fake_kubernetes
    project = services.do_create_project(kube_user, name="Shop")
    spec = build_database_spec(Database.objects.get(project=project))
    backend = KubernetesDatabaseBackend()
    kinds = (SERVICE_ACCOUNTS, ROLES, ROLE_BINDINGS, CLUSTERS)

    assert backend.create(spec).phase == DatabasePhase.STARTING
    assert backend.create(spec).phase == DatabasePhase.STARTING
    assert counts(fake, kinds) == {"serviceaccounts": 1, "roles": 1, "rolebindings": 1, "clusters": 1}
    assert [method for method, _ in fake.writes() if method != "POST"] == []
    fake.set_cluster_phase(spec.name, "Running")
    assert backend.start(spec).phase == DatabasePhase.RUNNING
    assert backend.start(spec).connection_url.startswith("postgresql://postgres:")

    assert backend.stop(spec).phase == DatabasePhase.STOPPING
    assert backend.stop(spec).phase == DatabasePhase.STOPPING
    assert fake.get(CLUSTERS, spec.name)["metadata"]["generation"] == 2
    patches = [(path, ctype) for method, path, ctype in fake.requests if method == "PATCH"]
    assert patches == [(f"/apis/apps.kubeblocks.io/v1alpha1/namespaces/team-a/clusters/{spec.name}", "application/json-patch+json")]
    fake.set_cluster_phase(spec.name, "Stopped")
    assert backend.stop(spec).phase == DatabasePhase.STOPPED

    assert backend.delete(spec).phase == DatabasePhase.DELETING
    assert backend.delete(spec).phase == DatabasePhase.DELETING
    fake.finish_cluster_deletion(spec.name)
    assert backend.delete(spec).phase == DatabasePhase.MISSING
    assert backend.delete(spec).phase == DatabasePhase.MISSING
    assert counts(fake, kinds) == {"serviceaccounts": 0, "roles": 0, "rolebindings": 0, "clusters": 0}
