"""projects.services.refresh_project_status when two reconcile tasks finish at the same moment."""

import threading
import time

from django.db import connection

from databases.models import Database
from fullstackagent.status import ProjectStatus, ResourceStatus
from projects import services
from projects.models import Project
from sandboxes.models import Sandbox


def test_a_refresh_that_read_stale_statuses_does_not_overwrite_a_fresher_one(transactional_db, user, monkeypatch):
    project = services.do_create_project(user, name="Race")
    Sandbox.objects.filter(project=project).update(status=ResourceStatus.TERMINATED)
    Database.objects.filter(project=project).update(status=ResourceStatus.TERMINATING)
    Project.objects.filter(pk=project.pk).update(status=ProjectStatus.TERMINATING)
    first_has_read, release_first = threading.Event(), threading.Event()
    aggregate = services.aggregate_status

    def aggregate_slowly_in_the_first(statuses):
        if threading.current_thread().name == "sandbox-task":
            first_has_read.set()  # it read TERMINATED + TERMINATING
            release_first.wait(10)
        return aggregate(statuses)

    monkeypatch.setattr(services, "aggregate_status", aggregate_slowly_in_the_first)

    def sandbox_task():
        services.refresh_project_status(project.pk)
        connection.close()

    def database_task():
        Database.objects.filter(project=project).update(status=ResourceStatus.TERMINATED)  # its step lands
        services.refresh_project_status(project.pk)
        connection.close()

    first = threading.Thread(target=sandbox_task, name="sandbox-task")
    first.start()
    assert first_has_read.wait(10)
    second = threading.Thread(target=database_task, name="database-task")
    second.start()
    time.sleep(0.5)  # the second refresh runs now (or waits for the first)
    release_first.set()
    first.join(10)
    second.join(10)

    assert Project.objects.get(pk=project.pk).status == ProjectStatus.TERMINATED


def test_refreshing_a_deleted_project_is_a_no_op(db, user):
    project = services.do_create_project(user, name="Gone")
    project_id = project.pk
    project.delete()

    assert services.refresh_project_status(project_id) is None
    assert not Project.objects.filter(pk=project_id).exists()
