"""The beat's scan: a constant number of queries whatever the number of steady projects."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from databases.models import Database
from fullstackagent.reconcile import claim_due_ids
from fullstackagent.status import ResourceStatus
from projects.models import Project
from projects.tasks import scan_resources
from sandboxes.models import Sandbox


def _steady_projects(user, count, *, due=False):
    now = timezone.now()
    next_check = now - timedelta(seconds=1) if due else None
    projects = Project.objects.bulk_create(
        [Project(user=user, name=f"Steady {i}", k8s_name="steady", status="RUNNING") for i in range(count)]
    )
    Sandbox.objects.bulk_create(
        [Sandbox(project=p, name=f"steady-{p.pk}", status=ResourceStatus.STOPPED, next_check_at=next_check) for p in projects]
    )
    Database.objects.bulk_create(
        [Database(project=p, name=f"steady-{p.pk}", status=ResourceStatus.STOPPED, next_check_at=next_check) for p in projects]
    )
    return projects


@pytest.mark.parametrize("count", [0, 300])
def test_scan_tick_queries_do_not_grow_with_steady_projects(user, count, django_assert_num_queries):
    _steady_projects(user, count)
    # The due sandboxes, the due databases, the projects whose last refresh was lost.
    with django_assert_num_queries(3):
        assert scan_resources() == 0


def test_due_rows_are_queued_once_per_lease(user):
    projects = _steady_projects(user, 3, due=True)
    first = claim_due_ids(Sandbox)
    assert sorted(first) == sorted(Sandbox.objects.filter(project__in=projects).values_list("pk", flat=True))
    # Pushed one lease ahead: the next tick does not queue them again while their task waits.
    assert claim_due_ids(Sandbox) == []


def test_leased_rows_are_not_due(user):
    _steady_projects(user, 2, due=True)
    Sandbox.objects.update(locked_until=timezone.now() + timedelta(seconds=30))
    assert claim_due_ids(Sandbox) == []
    Sandbox.objects.update(locked_until=timezone.now() - timedelta(seconds=1))
    assert len(claim_due_ids(Sandbox)) == 2


@pytest.mark.django_db(transaction=True)
def test_two_scans_at_once_queue_each_due_row_once(user):
    """Two beats (or two workers each scanning) are safe: while one scan's claim is still open,
    another skips its rows instead of waiting for them or queueing them too (README, compose)."""
    import threading

    from django.db import connections, transaction

    _steady_projects(user, 6, due=True)
    first_claimed, release, first = threading.Event(), threading.Event(), {}

    def first_scan():
        try:
            with transaction.atomic():
                first["ids"] = claim_due_ids(Sandbox, limit=3)
                first_claimed.set()
                release.wait(timeout=10)  # still uncommitted while the second scan runs
        finally:
            connections.close_all()

    thread = threading.Thread(target=first_scan)
    thread.start()
    assert first_claimed.wait(timeout=10)
    started = time.monotonic()
    second = claim_due_ids(Sandbox)
    waited = time.monotonic() - started
    release.set()
    thread.join(timeout=10)

    assert waited < 5  # it skipped the locked rows; waiting would have lasted the 10 s release timeout
    assert len(first["ids"]) == 3 and len(second) == 3
    assert set(first["ids"]).isdisjoint(second)
    assert set(first["ids"]) | set(second) == set(Sandbox.objects.values_list("pk", flat=True))
    assert claim_due_ids(Sandbox) == []


@pytest.mark.parametrize("plan", ["default", "nested loop"])
def test_a_claim_takes_at_most_its_batch_whatever_the_plan(user, plan):
    """With a nested-loop plan, a subquery that locks its LIMIT rows is run again for every row
    the UPDATE scans (each run skipping the rows just changed): the batch must not grow with it."""
    from django.db import connection

    _steady_projects(user, 6, due=True)
    if plan == "nested loop":  # the plan PostgreSQL chose in some full runs (table statistics)
        with connection.cursor() as cursor:
            for setting in ("hashjoin", "hashagg", "mergejoin", "sort", "material"):
                cursor.execute(f"SET LOCAL enable_{setting} = off")

    first = claim_due_ids(Sandbox, limit=4)
    second = claim_due_ids(Sandbox, limit=4)

    assert len(first) == 4 and len(second) == 2 and set(first).isdisjoint(second)
