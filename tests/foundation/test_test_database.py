"""The suite's own emptying of the test database after a transactional test (fullstackagent.testing.flush)."""

import threading
import warnings

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.sites.models import Site
from django.db import connections, transaction
from django.test import TransactionTestCase

from fullstackagent.testing import flush
from identities.models import UserConfig
from projects import services
from projects.models import Project
from sandboxes.models import Sandbox


class _AnyTransactionalTest(TransactionTestCase):
    databases = {"default"}


def _teardown():
    _AnyTransactionalTest()._fixture_teardown()


def _kept():
    return list(ContentType.objects.order_by("pk").values_list("pk", "app_label", "model")), list(
        Permission.objects.order_by("pk").values_list("pk", "codename")
    )


@pytest.mark.django_db(transaction=True)
def test_a_test_leaves_no_row_behind_but_the_content_types_permissions_and_site(make_user):
    assert TransactionTestCase._fixture_teardown is flush._fixture_teardown
    _teardown()  # the first one in a process is Django's flush, which notes what it left
    kept = _kept()
    site = list(Site.objects.values_list("pk", "domain"))
    user = make_user("alice")
    services.do_create_project(user, name="Blog")

    _teardown()

    assert not Project.objects.exists() and not Sandbox.objects.exists() and not UserConfig.objects.exists()
    assert not type(user).objects.exists()
    assert _kept() == kept and kept[0] and kept[1]
    assert list(Site.objects.values_list("pk", "domain")) == site


@pytest.mark.django_db(transaction=True)
def test_a_test_that_changed_the_permissions_gets_djangos_whole_flush(make_user):
    _teardown()
    kept = _kept()
    Permission.objects.create(codename="made_by_a_test", name="x", content_type=ContentType.objects.first())
    make_user("alice")

    _teardown()

    assert not Permission.objects.filter(codename="made_by_a_test").exists()
    assert [codename for _, codename in _kept()[1]] == [codename for _, codename in kept[1]]
    assert not type(make_user("bob")).objects.exclude(username="bob").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("writes_first", [True, False], ids=["written", "read"])
def test_rows_written_by_another_session_at_the_same_time_are_deleted_too(make_user, django_user_model, writes_first):
    """A web process still answering when the test ends, its transaction having read and about to
    write (or written): the emptying waits for its transaction, and its rows go too."""
    _teardown()
    make_user("alice")
    started, finish = threading.Event(), threading.Event()

    def other_session():
        try:
            with transaction.atomic():
                if writes_first:
                    services.do_create_project(django_user_model.objects.create(username="early"), name="Early")
                else:
                    django_user_model.objects.exists()
                started.set()
                finish.wait(10)
                django_user_model.objects.create(username="late")
        finally:
            connections.close_all()

    def emptying_session():
        try:
            _teardown()
        finally:
            connections.close_all()

    writer = threading.Thread(target=other_session)
    writer.start()
    assert started.wait(10)
    emptying = threading.Thread(target=emptying_session)
    emptying.start()
    emptying.join(0.5)
    assert emptying.is_alive(), "the emptying did not wait for the other session's transaction"
    finish.set()
    writer.join(10)
    emptying.join(10)

    assert not Project.objects.exists() and not django_user_model.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_rows_committed_after_the_emptying_are_emptied_before_the_next_test_and_reported(make_user):
    """Something an earlier test left running (a thread, a process, a request in flight) commits
    after that test's emptying: the next transactional test does not begin with its rows."""
    _teardown()
    site = list(Site.objects.values_list("pk", "domain"))

    def late_session():
        try:
            services.do_create_project(make_user("late"), name="Late")
        finally:
            connections.close_all()

    late = threading.Thread(target=late_session)
    late.start()
    late.join(10)
    assert Project.objects.count() == 1 and Sandbox.objects.count() == 1

    with pytest.warns(flush.StrayRowsWarning, match="sandboxes_sandbox") as caught:
        _AnyTransactionalTest._fixture_setup()

    assert not Project.objects.exists() and not Sandbox.objects.exists()
    assert not UserConfig.objects.exists() and not type(make_user("bob")).objects.exclude(username="bob").exists()
    assert list(Site.objects.values_list("pk", "domain")) == site
    assert f"this process: {flush.previous_test['nodeid']}." in str(caught[0].message)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _teardown()
        _AnyTransactionalTest._fixture_setup()  # nothing stray: no warning
