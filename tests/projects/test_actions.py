"""Start/stop/delete follow the original system's allowed-actions table; refusals change nothing."""

import pytest

from databases.models import Database
from fullstackagent.status import ResourceStatus
from projects import services
from projects.models import Environment, Project
from sandboxes.models import Sandbox

START, STOP, DELETE, RESTART = "start", "stop", "delete", "restart"
DO = {START: services.do_start_project, STOP: services.do_stop_project, DELETE: services.do_delete_project}


@pytest.mark.parametrize(
    "status, allowed",
    [
        ("RUNNING", {STOP, DELETE, RESTART}),
        ("STOPPED", {START, DELETE}),
        ("PARTIAL", {START, STOP, DELETE}),
        ("ERROR", {START, STOP, DELETE}),
        ("STARTING", {STOP, DELETE}),
        ("STOPPING", {START, DELETE}),
        ("CREATING", {STOP, DELETE}),  # stop while creating or updating: issue 13
        ("UPDATING", {STOP, DELETE}),
        ("TERMINATING", set()),
        ("TERMINATED", set()),
    ],
)
def test_allowed_actions_by_project_status(status, allowed):
    assert services.allowed_actions(status, ["RUNNING", "STOPPED"]) == allowed


@pytest.mark.parametrize("blocking", ["TERMINATING", "TERMINATED"])
def test_start_and_stop_refused_while_a_resource_is_busy(blocking):
    assert services.allowed_actions("PARTIAL", ["RUNNING", blocking]) == {DELETE}


@pytest.mark.parametrize("changing", ["CREATING", "UPDATING"])
def test_start_refused_but_stop_allowed_while_a_resource_is_changing(changing):
    """Issue 13: a change stuck in CREATING/UPDATING can be stopped, not only deleted."""
    assert services.allowed_actions("PARTIAL", ["RUNNING", changing]) == {STOP, DELETE}


def _project_with(user, sandbox_status, database_status, project_status):
    project = services.do_create_project(user, name="Table Test")
    Sandbox.objects.filter(project=project).update(status=sandbox_status)
    Database.objects.filter(project=project).update(status=database_status)
    Project.objects.filter(pk=project.pk).update(status=project_status)
    return Project.objects.get(pk=project.pk)


@pytest.mark.parametrize(
    "resources, project_status, action, expected",
    [
        (("RUNNING", "RUNNING"), "RUNNING", STOP, ("STOPPING", "STOPPING", "STOPPING")),
        (("STOPPED", "STOPPED"), "STOPPED", START, ("STARTING", "STARTING", "STARTING")),
        (("ERROR", "RUNNING"), "ERROR", START, ("STARTING", "RUNNING", "STARTING")),
        (("ERROR", "STOPPED"), "ERROR", STOP, ("STOPPING", "STOPPED", "STOPPING")),
        (("RUNNING", "STOPPED"), "PARTIAL", DELETE, ("TERMINATING", "TERMINATING", "TERMINATING")),
        (("CREATING", "CREATING"), "CREATING", DELETE, ("TERMINATING", "TERMINATING", "TERMINATING")),
        # Issue 13: stop is allowed while creating or updating (a stuck change must not leave only delete).
        (("CREATING", "CREATING"), "CREATING", STOP, ("STOPPING", "STOPPING", "STOPPING")),
        (("UPDATING", "RUNNING"), "UPDATING", STOP, ("STOPPING", "STOPPING", "STOPPING")),
    ],
)
def test_allowed_action_sets_desired_state(user, resources, project_status, action, expected):
    project = _project_with(user, *resources, project_status)
    Sandbox.objects.filter(project=project).update(last_error="boom", attempts=3)

    result = DO[action](project)

    sandbox, database = Sandbox.objects.get(project=project), Database.objects.get(project=project)
    assert (sandbox.status, database.status, result.status) == expected
    if sandbox.status != resources[0]:
        assert (sandbox.last_error, sandbox.attempts) == ("", 0)
        assert sandbox.next_check_at is not None


@pytest.mark.parametrize(
    "resources, project_status, action, message",
    [
        (("RUNNING", "RUNNING"), "RUNNING", START, "Cannot start a project that is RUNNING."),
        (("CREATING", "CREATING"), "CREATING", START, "Cannot start a project that is CREATING."),
        (("TERMINATED", "TERMINATED"), "TERMINATED", DELETE, "Cannot delete a project that is TERMINATED."),
        (("RUNNING", "UPDATING"), "PARTIAL", START, "Cannot start the project while a resource is UPDATING."),
        (("RUNNING", "TERMINATING"), "PARTIAL", STOP, "Cannot stop the project while a resource is TERMINATING."),
    ],
)
def test_refused_action_changes_nothing(user, resources, project_status, action, message):
    project = _project_with(user, *resources, project_status)
    before = (
        list(Sandbox.objects.filter(project=project).values_list("status", "next_check_at", "updated")),
        list(Database.objects.filter(project=project).values_list("status", "next_check_at", "updated")),
        Project.objects.get(pk=project.pk).updated,
    )
    with pytest.raises(services.ActionNotAllowed) as refused:
        DO[action](project)
    assert str(refused.value) == message
    after = (
        list(Sandbox.objects.filter(project=project).values_list("status", "next_check_at", "updated")),
        list(Database.objects.filter(project=project).values_list("status", "next_check_at", "updated")),
        Project.objects.get(pk=project.pk).updated,
    )
    assert after == before


def test_create_project_records_everything_in_one_go(user):
    project = services.do_create_project(user, name="  Café Crème ")
    assert (project.name, project.k8s_name, project.status) == ("Café Crème", "cafecreme", "CREATING")
    sandbox, database = Sandbox.objects.get(project=project), Database.objects.get(project=project)
    assert sandbox.status == database.status == ResourceStatus.CREATING
    assert sandbox.name.startswith("cafecreme-agentruntime-")
    token = Environment.objects.get(project=project, key="TTYD_ACCESS_TOKEN")
    assert (token.category, token.is_secret) == ("ttyd", True)
    assert len(token.value) >= 43  # 32 random bytes, url-safe base64


def test_create_project_with_invalid_name_creates_nothing(user):
    with pytest.raises(Exception) as refused:
        services.do_create_project(user, name="bad_name!")
    assert refused.value.code == "invalid_name"
    assert (Project.objects.count(), Sandbox.objects.count(), Database.objects.count()) == (0, 0, 0)


def test_kubernetes_backend_needs_a_kubeconfig(user, settings):
    settings.SANDBOX_BACKEND = "kubernetes"
    with pytest.raises(services.KubeconfigMissing):
        services.do_create_project(user, name="Needs Cluster")
    assert Project.objects.count() == 0


def test_restart_asks_the_running_sandbox_to_restart_and_keeps_the_database(user):
    project = _project_with(user, ResourceStatus.RUNNING, ResourceStatus.RUNNING, "RUNNING")

    project = services.do_restart_project(project)

    sandbox = Sandbox.objects.get(project=project)
    assert (sandbox.status, sandbox.restart_requested) == (ResourceStatus.STARTING, True)
    assert Database.objects.get(project=project).status == ResourceStatus.RUNNING
    assert project.status == "STARTING"


def test_restart_of_a_stopped_project_is_refused_and_changes_nothing(user):
    project = _project_with(user, ResourceStatus.STOPPED, ResourceStatus.STOPPED, "STOPPED")

    with pytest.raises(services.ActionNotAllowed, match="Cannot restart a project that is STOPPED"):
        services.do_restart_project(project)

    sandbox = Sandbox.objects.get(project=project)
    assert (sandbox.status, sandbox.restart_requested) == (ResourceStatus.STOPPED, False)
