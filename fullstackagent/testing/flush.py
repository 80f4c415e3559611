"""The emptying of the test database after each transactional test, without remaking what migrate made.

After a test that commits (pytest-django's ``transactional_db``: every test with a live server, a
Celery worker or a browser), Django's TransactionTestCase runs ``flush``: it truncates every table,
content types and permissions included, then sends ``post_migrate`` so that they are made again
(130 queries, about 170 ms of the test's time here, half of it in the test process). Their rows
come from the code alone and no test changes them: this teardown empties every other table and
sends ``post_migrate`` to the other receivers only (the default Site's). It checks the kept tables
first: if a test added or removed a content type or permission, Django's own flush runs instead.

The tables are emptied with DELETE, not TRUNCATE: they hold a test's few rows, and TRUNCATE's
fixed cost per table (new files for the table and its indexes) made 27 tables take 85 ms against
3 ms. With TRUNCATE's lock, though (ACCESS EXCLUSIVE): it waits for every other session's
transaction on those tables to end, readers included (a web process of the run still answering a
request of the test: one that has read and is about to write), and holds new ones until it is
done, so their rows are deleted too. A weaker lock that waited for writers only let a request that
had read but not yet written insert its rows after the emptying, into the next test. Django's
foreign keys are deferrable, so the order of the DELETEs does not matter. A DELETE that fails (a
constraint that is not deferred, a deadlock with such a session) falls back to Django's flush.

Before a transactional test the same tables are counted (one query, about a millisecond): rows
there were committed after the last emptying by something an earlier test left running (a thread,
a process, a request still in flight), or outside a test's transaction by a test that does not
flush. They would be this test's rows too (a scan that claims every due row would claim them), so
they are emptied, and a StrayRowsWarning names the tables and the test that ran before. (None were
found in two full runs; the check makes such a leak a named warning instead of a puzzle.)
"""

import warnings

from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.management import create_contenttypes
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.management.sql import emit_post_migrate_signal
from django.db import DatabaseError, connections, transaction
from django.db.models.signals import post_migrate
from django.test import TransactionTestCase

PERMISSIONS_DISPATCH_UID = "django.contrib.auth.management.create_permissions"  # django.contrib.auth.apps

_django_teardown = TransactionTestCase._fixture_teardown
_django_setup = TransactionTestCase._fixture_setup.__func__
# Per database: the kept tables' (count, largest id) as Django's flush left them.
_baseline: dict[str, tuple] = {}
# Per database: the row counts of the emptied tables right after an emptying (the default Site's row).
_emptied_counts: dict[str, dict] = {}
# The test that ran last in this process (fullstackagent.testing.plugin notes it), for the warning.
previous_test = {"nodeid": None}


class StrayRowsWarning(UserWarning):
    """Rows were in the test database when a transactional test began."""


def install() -> None:
    TransactionTestCase._fixture_teardown = _fixture_teardown
    TransactionTestCase._fixture_setup = classmethod(_fixture_setup)


def _fixture_setup(cls) -> None:
    if cls.available_apps is None and not cls.serialized_rollback:
        for db_name in cls._databases_names(include_mirrors=False):
            if db_name in _emptied_counts:
                _empty_stray_rows(db_name)
    return _django_setup(cls)


def _empty_stray_rows(db_name: str) -> None:
    connection = connections[db_name]
    counts = _counts(connection, list(_emptied_counts[db_name]))
    stray = {table: count for table, count in counts.items() if count != _emptied_counts[db_name][table]}
    if not stray:
        return
    warnings.warn(
        StrayRowsWarning(
            f"rows committed after the last emptying of the test database (table: rows {stray}), "
            f"by something left running or a commit outside a test's transaction; the test before "
            f"this one in this process: {previous_test['nodeid']}. They were emptied."
        ),
        stacklevel=2,
    )
    try:
        _empty_all_but_the_kept_tables(connection)
    except DatabaseError:
        call_command("flush", verbosity=0, interactive=False, database=db_name)
        _baseline[db_name] = None  # content types and permissions were made again: noted at the next teardown
        return
    _post_migrate_without_contenttypes_and_permissions(db_name)


def _counts(connection, tables: list[str]) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            " UNION ALL ".join(f"(SELECT %s, count(*) FROM {connection.ops.quote_name(table)})" for table in tables),
            tables,
        )
        return dict(cursor.fetchall())


def _kept_tables() -> list[str]:
    return [ContentType._meta.db_table, Permission._meta.db_table]


def _kept_rows(connection) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(
            " UNION ALL ".join(
                f"(SELECT count(*), coalesce(max(id), 0) FROM {connection.ops.quote_name(table)})"
                for table in _kept_tables()
            )
        )
        return tuple(cursor.fetchall())


def _fixture_teardown(self) -> None:
    if self.available_apps is not None or self.serialized_rollback:
        return _django_teardown(self)
    for db_name in self._databases_names(include_mirrors=False):
        connection = connections[db_name]
        if _baseline.get(db_name) is None or _kept_rows(connection) != _baseline[db_name]:
            _django_flush(self, db_name)
            _baseline[db_name] = _kept_rows(connection)
            continue
        try:
            _empty_all_but_the_kept_tables(connection)
        except DatabaseError:
            _django_flush(self, db_name)
            continue
        _post_migrate_without_contenttypes_and_permissions(db_name)
        if db_name not in _emptied_counts:
            _emptied_counts[db_name] = _counts(connection, _emptied_tables(connection))


def _django_flush(test, db_name: str) -> None:
    names = test._databases_names
    test._databases_names = lambda include_mirrors=True: [db_name]
    try:
        _django_teardown(test)
    finally:
        test._databases_names = names


def _emptied_tables(connection) -> list[str]:
    kept = set(_kept_tables())
    return sorted(
        table
        for table in connection.introspection.django_table_names(only_existing=True, include_views=False)
        if table not in kept
    )


def _empty_all_but_the_kept_tables(connection) -> None:
    tables = [connection.ops.quote_name(table) for table in _emptied_tables(connection)]
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        cursor.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
        cursor.execute("; ".join(f"DELETE FROM {table}" for table in tables))


def _post_migrate_without_contenttypes_and_permissions(db_name: str) -> None:
    post_migrate.disconnect(create_contenttypes)
    post_migrate.disconnect(create_permissions, dispatch_uid=PERMISSIONS_DISPATCH_UID)
    try:
        emit_post_migrate_signal(verbosity=0, interactive=False, db=db_name)
    finally:
        post_migrate.connect(create_contenttypes)
        post_migrate.connect(create_permissions, dispatch_uid=PERMISSIONS_DISPATCH_UID)
