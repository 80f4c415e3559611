"""projects.services.refresh_project_status when two reconcile tasks finish at the same moment."""

import threading
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from databases.models import Database
from fullstackagent.status import ProjectStatus, ResourceStatus
from projects import services
from projects.models import Project
from projects.tasks import scan_resources
from fullstackagent.testing.processes import wait_for
from sandboxes.models import Sandbox


def _a_session_waits_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


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
    # Observed, not slept on: the second refresh is blocked on the first's lock. (Without the lock
    # it would not wait at all, and would finish here with TERMINATED only to be overwritten.)
    wait_for(_a_session_waits_on_a_lock, timeout=10, message="the second refresh to wait for the first's lock")
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


def test_the_scan_refreshes_a_project_whose_last_refresh_was_lost(db, user):
    # The steps landed (every resource STOPPED) but the refresh after the last one never ran: a
    # worker killed between the two, or PostgreSQL gone in between.
    lost = services.do_create_project(user, name="Lost Refresh")
    moving = services.do_create_project(user, name="Still Moving")
    for project in (lost, moving):
        Sandbox.objects.filter(project=project).update(status=ResourceStatus.STOPPED, next_check_at=None)
        Database.objects.filter(project=project).update(status=ResourceStatus.STOPPED, next_check_at=None)
    long_ago = timezone.now() - timedelta(seconds=services.STALE_STATUS_SECONDS + 5)
    Project.objects.filter(pk=lost.pk).update(status=ProjectStatus.STOPPING, updated=long_ago)
    Project.objects.filter(pk=moving.pk).update(status=ProjectStatus.STOPPING, updated=timezone.now())

    scan_resources()

    assert Project.objects.get(pk=lost.pk).status == ProjectStatus.STOPPED
    # One that changed a moment ago is its steps' to refresh, not the scan's.
    assert Project.objects.get(pk=moving.pk).status == ProjectStatus.STOPPING
