"""Per-user quotas: defaults from settings, overrides an operator sets in the admin. A refusal is a 409
whose message says the limit and how to free one, and changes nothing."""

import threading

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from databases.models import Database
from fullstackagent.status import ResourceStatus
from fullstackagent.testing.processes import wait_for
from identities.models import UserQuota
from projects import services
from projects.models import Project
from sandboxes.kubernetes import manifests
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_login(user)
    return client


def test_the_project_over_the_limit_is_refused_with_409_and_nothing_is_made(api, user, settings):
    settings.QUOTA_PROJECTS = 2
    for name in ("One", "Two"):
        assert api.post("/api/projects", {"name": name}, format="json").status_code == 201
    Sandbox.objects.update(status=ResourceStatus.STOPPED)  # not the running limit

    response = api.post("/api/projects", {"name": "Three"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "QUOTA_EXCEEDED"
    assert response.json()["message"] == (
        "Your limit is 2 projects and you have 2. Delete a project you no longer need, then try again."
    )
    assert Project.objects.filter(user=user).count() == 2
    assert Sandbox.objects.filter(project__user=user).count() == 2


def test_the_running_sandbox_over_the_limit_is_refused_and_a_stopped_one_frees_a_place(api, user):
    UserQuota.objects.create(user=user, max_running_sandboxes=1)
    first = services.do_create_project(user, name="Running One")
    with pytest.raises(services.QuotaExceeded):
        services.do_create_project(user, name="Running Two")
    assert Project.objects.filter(user=user).count() == 1
    Sandbox.objects.filter(project=first).update(status=ResourceStatus.STOPPED)
    Database.objects.filter(project=first).update(status=ResourceStatus.STOPPED)
    services.refresh_project_status(first.pk)
    other = services.do_create_project(user, name="Running Two")

    response = api.post(f"/api/projects/{first.pk}/start")

    assert response.status_code == 409
    assert response.json()["message"] == (
        "Your limit is 1 running sandbox and 1 is running or starting. Stop a project you are not using, then try again."
    )
    assert Sandbox.objects.get(project=first).status == ResourceStatus.STOPPED
    # Stopping the other frees the place.
    Sandbox.objects.filter(project=other).update(status=ResourceStatus.STOPPED)
    services.refresh_project_status(other.pk)
    assert api.post(f"/api/projects/{first.pk}/start").status_code == 200
    assert Sandbox.objects.get(project=first).status == ResourceStatus.STARTING


def test_an_operators_override_wins_over_the_default(user, other_user, settings):
    settings.QUOTA_PROJECTS = 1
    UserQuota.objects.create(user=user, max_projects=3, sandbox_cpu="500m", sandbox_memory="1Gi")

    assert UserQuota.limits_for(user.pk) == {
        "projects": 3, "running_sandboxes": settings.QUOTA_RUNNING_SANDBOXES, "sandbox_cpu": "500m", "sandbox_memory": "1Gi",
        "idle_stop_minutes": float(settings.IDLE_STOP_MINUTES),
    }
    assert UserQuota.limits_for(other_user.pk)["projects"] == 1
    assert UserQuota.limits_for(other_user.pk)["sandbox_cpu"] == settings.QUOTA_SANDBOX_CPU


def test_the_admin_edits_a_users_quota(admin_client, user, settings):
    response = admin_client.post(
        "/admin/identities/userquota/add/",
        {"user": user.pk, "max_projects": "4", "max_running_sandboxes": "2", "sandbox_cpu": "1", "sandbox_memory": "2Gi"},
    )

    assert response.status_code == 302
    assert UserQuota.limits_for(user.pk) == {
        "projects": 4, "running_sandboxes": 2, "sandbox_cpu": "1", "sandbox_memory": "2Gi",
        "idle_stop_minutes": float(settings.IDLE_STOP_MINUTES),
    }
    bad = admin_client.post(
        "/admin/identities/userquota/add/", {"user": user.pk, "sandbox_cpu": "two cores", "sandbox_memory": ""}
    )
    assert bad.status_code == 200
    assert "A Kubernetes CPU quantity" in bad.content.decode()


def test_a_sandbox_pod_gets_the_users_resource_limits(user):
    UserQuota.objects.create(user=user, sandbox_cpu="500m", sandbox_memory="1Gi")
    project = services.do_create_project(user, name="Small Pod")
    spec = build_spec(Sandbox.objects.get(project=project))

    statefulset = manifests.stateful_set(
        name=spec.name, namespace="n", labels={"app": spec.name}, image="i", replicas=1,
        cpu_limit=spec.cpu_limit, memory_limit=spec.memory_limit,
    )

    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "1Gi"}


def _waiting_for_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def test_two_creates_at_once_cannot_both_pass_the_project_quota(transactional_db, user, settings):
    """The second create waits for the first's lock on the user row, then counts the first's
    project (limits and usage are read in a statement after the lock, which sees what the first
    committed) and is refused."""
    settings.QUOTA_PROJECTS = 1
    first_created, release_first, results = threading.Event(), threading.Event(), {}

    def first():
        try:
            with transaction.atomic():
                results["first"] = services.do_create_project(user, name="First At Once")
                first_created.set()
                release_first.wait(20)
        finally:
            connection.close()

    def second():
        try:
            results["second"] = services.do_create_project(user, name="Second At Once")
        except services.QuotaExceeded as refusal:
            results["second"] = refusal
        finally:
            connection.close()

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert first_created.wait(20)
    threads.append(threading.Thread(target=second))
    threads[1].start()
    wait_for(lambda: _waiting_for_a_lock() >= 1, message="the second create to wait for the user's lock")
    release_first.set()
    for thread in threads:
        thread.join(20)

    assert isinstance(results["first"], Project)
    assert isinstance(results["second"], services.QuotaExceeded)
    assert "Your limit is 1 project and you have 1." in str(results["second"])
    assert list(Project.objects.filter(user=user).values_list("name", flat=True)) == ["First At Once"]
