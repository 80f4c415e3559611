"""Failures of the cluster, through the real engine: 5xx and timeouts back off and recover;
401, 403 and a bad kubeconfig end in ERROR with a message that says what to fix."""

from databases.models import Database
from fullstackagent.status import ResourceStatus
from identities.models import ConfigKey, UserConfig
from projects import services
from projects.tasks import reconcile_database, reconcile_sandbox
from sandboxes.models import Sandbox
from tests.kubernetes.conftest import CLUSTERS, SECRETS, STATEFULSETS


def run(row):
    (reconcile_sandbox if isinstance(row, Sandbox) else reconcile_database)(row.pk)
    row.refresh_from_db()
    return row


def database_running(project, fake):
    """Sandboxes wait for their database's URL before they are created; get it there first."""
    database = run(Database.objects.get(project=project))
    fake.set_cluster_phase(database.name, "Running")
    database = run(database)
    assert database.status == ResourceStatus.RUNNING
    return database


def test_server_errors_are_retried_with_backoff_then_recover(kubernetes_settings, fake_kubernetes, kube_user):
    fake = fake_kubernetes
    project = services.do_create_project(kube_user, name="Shop")
    sandbox = Sandbox.objects.get(project=project)
    database_running(project, fake)
    fake.fail(500, times=2, method="POST", path="/statefulsets")

    sandbox = run(sandbox)
    assert (sandbox.status, sandbox.attempts) == (ResourceStatus.CREATING, 1)
    assert sandbox.last_error == (
        f"The cluster answered 500 Internal Server Error while trying to create the StatefulSet {sandbox.name}. "
        "(retrying, attempt 1)"
    )
    assert 1.5 < (sandbox.next_check_at - sandbox.observed_at).total_seconds() < 2.5  # 2 s backoff
    sandbox = run(sandbox)
    assert (sandbox.status, sandbox.attempts) == (ResourceStatus.CREATING, 2)
    assert 3.5 < (sandbox.next_check_at - sandbox.observed_at).total_seconds() < 4.5  # then 4 s
    sandbox = run(sandbox)
    assert (sandbox.status, sandbox.attempts, sandbox.last_error) == (ResourceStatus.STARTING, 0, "")
    assert fake.names(STATEFULSETS) == [sandbox.name]


def test_timeouts_are_retried_then_recover(kubernetes_settings, fake_kubernetes, kube_user):
    fake = fake_kubernetes
    project = services.do_create_project(kube_user, name="Shop")
    database = Database.objects.get(project=project)
    database = run(database)
    fake.set_cluster_phase(database.name, "Running")
    fake.delay(2.0, times=1, method="GET", path="/clusters/")

    database = run(database)
    assert (database.status, database.attempts) == (ResourceStatus.STARTING, 1)
    assert database.last_error == (
        f"The cluster did not answer in time while trying to read the Cluster {database.name}. (retrying, attempt 1)"
    )
    database = run(database)
    assert (database.status, database.attempts, database.last_error) == (ResourceStatus.RUNNING, 0, "")
    assert database.connection_url.startswith("postgresql://postgres:")


def test_forbidden_ends_in_error_with_a_readable_message(kubernetes_settings, fake_kubernetes, kube_user):
    fake = fake_kubernetes
    project = services.do_create_project(kube_user, name="Shop")
    sandbox = Sandbox.objects.get(project=project)
    database_running(project, fake)
    fake.fail(403, times=None, method="POST", path="/statefulsets")

    sandbox = run(sandbox)
    assert sandbox.status == ResourceStatus.ERROR
    assert sandbox.last_error == (
        f"Your kubeconfig has no permission to create the StatefulSet {sandbox.name} in namespace 'team-a' "
        "(403 Forbidden). Use a kubeconfig for a namespace you own, or ask the cluster admin for this "
        "permission, then start the project."
    )
    assert sandbox.attempts == 0  # permanent: not retried
    assert fake.names(STATEFULSETS) == []
    assert project.__class__.objects.get(pk=project.pk).status == "ERROR"


def test_rejected_credentials_end_in_error(kubernetes_settings, fake_kubernetes, kube_user):
    fake = fake_kubernetes
    UserConfig.objects.filter(user=kube_user, key=ConfigKey.KUBECONFIG).update(
        value=fake.kubeconfig(token="expired-token")
    )
    project = services.do_create_project(kube_user, name="Shop")
    database = run(Database.objects.get(project=project))
    assert database.status == ResourceStatus.ERROR
    assert database.last_error == (
        f"The cluster rejected your kubeconfig's credentials (401 Unauthorized) while trying to create the "
        f"ServiceAccount {database.name}: the token or certificate is wrong or expired. Save a fresh kubeconfig "
        "in Settings, then start the project."
    )
    assert fake.names(CLUSTERS) == []


def test_invalid_kubeconfig_ends_in_error_without_calling_the_cluster(kubernetes_settings, fake_kubernetes, kube_user):
    fake = fake_kubernetes
    UserConfig.objects.filter(user=kube_user, key=ConfigKey.KUBECONFIG).update(value="clusters: [oops")
    project = services.do_create_project(kube_user, name="Shop")
    database = run(Database.objects.get(project=project))
    assert database.status == ResourceStatus.ERROR
    assert database.last_error == (
        "The kubeconfig is not valid YAML (line 1). Fix the kubeconfig in Settings, then start the project."
    )
    assert fake.requests == []
    assert fake.names(SECRETS) == []


def test_error_is_left_by_starting_again_once_fixed(kubernetes_settings, fake_kubernetes, kube_user):
    """An ERROR is not a dead end (the original's fault 8): start re-creates what is missing."""
    fake = fake_kubernetes
    project = services.do_create_project(kube_user, name="Shop")
    sandbox = Sandbox.objects.get(project=project)
    database_running(project, fake)
    fake.fail(403, times=None, method="POST", path="/statefulsets")
    sandbox = run(sandbox)
    assert sandbox.status == ResourceStatus.ERROR
    fake.faults.clear()

    services.do_start_project(project.__class__.objects.get(pk=project.pk))
    sandbox = run(Sandbox.objects.get(pk=sandbox.pk))
    assert (sandbox.status, sandbox.last_error) == (ResourceStatus.STARTING, "")
    assert fake.names(STATEFULSETS) == [sandbox.name]
    fake.roll_out(sandbox.name)
    assert run(sandbox).status == ResourceStatus.RUNNING
