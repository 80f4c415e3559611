"""The pool lends a connection used a moment ago without a round trip, and still checks (and
replaces) one that sat idle, so a connection cut while idle never fails a request."""

import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from psycopg_pool import ConnectionPool

from fullstackagent import db_pool


@pytest.fixture
def pool():
    database = settings.DATABASES["default"]
    pool = ConnectionPool(
        kwargs={
            "host": database["HOST"], "port": database["PORT"], "user": database["USER"],
            "password": database["PASSWORD"], "dbname": database["NAME"], "autocommit": True,
        },
        min_size=1, max_size=1, open=True,
        check=db_pool.check_unless_recently_used, reset=db_pool.note_return,
    )
    yield pool
    pool.close()


def test_the_platform_pool_uses_the_cheap_check(db):
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    assert connection.pool._check is db_pool.check_unless_recently_used
    assert connection.pool._reset is db_pool.note_return


def test_a_connection_used_a_moment_ago_is_lent_without_a_round_trip(pool, monkeypatch, db):
    checks = []
    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(lambda conn: checks.append(conn)))
    with pool.connection() as conn:
        conn.execute("SELECT 1")
    first_checks = len(checks)  # a new connection, never returned: checked
    with pool.connection() as conn:
        conn.execute("SELECT 1")

    assert first_checks == 1
    assert len(checks) == 1  # lent again right after its return: no check


def test_a_connection_cut_while_idle_is_replaced_before_it_is_lent(pool, monkeypatch, db):
    monkeypatch.setattr(db_pool, "RECENTLY_USED_SECONDS", 0.2)
    with pool.connection() as conn:
        victim = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(settings.LOCAL_DATABASE_ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [victim])
    time.sleep(0.3)

    with pool.connection() as conn:
        answer = conn.execute("SELECT pg_backend_pid()").fetchone()[0]

    assert answer != victim
