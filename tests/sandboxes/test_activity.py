"""sandboxes.activity: terminal and preview traffic recorded as use of a sandbox, cheaply enough to
call on every frame (real PostgreSQL; query counts pinned)."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from projects import services
from sandboxes import activity
from sandboxes.activity import anote_activity, note_activity
from sandboxes.models import Sandbox


@pytest.fixture
def sandbox(user, settings):
    # 1.2 s: a write interval of a quarter of it, 0.3 s, so the test can see a second write.
    settings.IDLE_STOP_MINUTES = 0.02
    activity._last_written.clear()
    project = services.do_create_project(user, name="Chatty")
    return Sandbox.objects.get(project=project)


def test_a_busy_terminal_costs_one_write_per_interval(sandbox, django_assert_num_queries):
    updated = sandbox.updated

    with django_assert_num_queries(1):
        for _ in range(1000):
            note_activity(sandbox.pk)

    first = Sandbox.objects.get(pk=sandbox.pk)
    assert first.last_activity_at is not None
    assert first.updated == updated  # use is not an edit of the row
    # Another process (nothing remembered) finds the stored value fresh: its UPDATE writes nothing.
    activity._last_written.clear()
    assert activity.record_activity(sandbox.pk) == 0
    assert Sandbox.objects.get(pk=sandbox.pk).last_activity_at == first.last_activity_at
    # Once the interval has passed, the next frame writes again.
    time.sleep(activity.write_interval())
    note_activity(sandbox.pk)
    assert Sandbox.objects.get(pk=sandbox.pk).last_activity_at > first.last_activity_at


def test_the_interval_is_30_s_or_a_quarter_of_the_idle_limit(settings):
    settings.IDLE_STOP_MINUTES = 60
    assert activity.write_interval() == 30.0
    settings.IDLE_STOP_MINUTES = 1
    assert activity.write_interval() == 15.0
    settings.IDLE_STOP_MINUTES = 0  # never stopped by default; users may still choose a limit
    assert activity.write_interval() == 30.0


@pytest.mark.django_db(transaction=True)
def test_the_async_form_hops_to_the_database_once_per_interval(user, settings, monkeypatch):
    settings.IDLE_STOP_MINUTES = 0.02
    activity._last_written.clear()
    project = services.do_create_project(user, name="Relay")
    sandbox = Sandbox.objects.get(project=project)
    hops = []
    real_record = activity.record_activity

    async def frames():
        for _ in range(500):
            await anote_activity(sandbox.pk)
        await sync_to_async(connections.close_all)()

    # Counted on the real function: each call is one thread hop and one UPDATE.
    monkeypatch.setattr(activity, "record_activity", lambda sandbox_id: hops.append(sandbox_id) or real_record(sandbox_id))
    asyncio.run(frames())

    assert hops == [sandbox.pk]
    assert Sandbox.objects.get(pk=sandbox.pk).last_activity_at is not None
