"""The pool lends a connection used a moment ago without a round trip, and still checks (and
replaces) one that sat idle or that the server ended, so a connection cut while idle never fails
a request."""

import functools
import time
import urllib.error
import urllib.request

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from psycopg_pool import ConnectionPool

from fullstackagent import db_pool


def connection_kwargs() -> dict:
    database = settings.DATABASES["default"]
    return {
        "host": database["HOST"], "port": database["PORT"], "user": database["USER"],
        "password": database["PASSWORD"], "dbname": database["NAME"], "autocommit": True,
    }


def end_backends(condition: str, parameters: list) -> int:
    """Ends the sessions ``condition`` selects in pg_stat_activity, as a restart would, and waits
    until their backends are gone (by then their goodbye is on the clients' sockets)."""
    with psycopg.connect(settings.LOCAL_DATABASE_ADMIN_URL, autocommit=True) as admin:
        selected = f"FROM pg_stat_activity WHERE ({condition}) AND pid <> pg_backend_pid()"
        ended = admin.execute(f"SELECT count(pg_terminate_backend(pid)) {selected}", parameters).fetchone()[0]
        deadline = time.monotonic() + 5
        while admin.execute(f"SELECT count(*) {selected}", parameters).fetchone()[0]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    return ended


class NotingPool(ConnectionPool):
    """A pool whose returns are noted as the platform's Django backend notes them."""

    def putconn(self, conn):
        db_pool.note_return(conn)
        super().putconn(conn)


@pytest.fixture
def pool():
    pool = NotingPool(
        kwargs=connection_kwargs(),
        min_size=1, max_size=1, open=True,
        check=db_pool.check_unless_recently_used,
    )
    yield pool
    pool.close()


def test_the_platform_pool_uses_the_cheap_check(db):
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    assert connection.pool._check.func is db_pool.check_unless_recently_used
    assert connection.pool._check.keywords == {"pool": connection.pool}
    # No reset callback: with one, psycopg_pool hands every return to its maintenance thread.
    assert connection.pool._reset is None


def test_a_connection_django_gives_back_is_noted_as_returned(transactional_db):
    connection.ensure_connection()
    given_back = connection.connection

    connection.close()

    assert connection.connection is None
    assert time.monotonic() - db_pool._returned_at[given_back] < 1.0
    assert given_back.closed is False  # back in the pool, not closed


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


def test_a_connection_the_server_ended_a_moment_after_its_return_is_replaced(pool, monkeypatch, db):
    """A PostgreSQL restart or pg_terminate_backend right after a request: the connection was given
    back a moment ago, but the server's goodbye is waiting on its socket, so it is checked (and
    replaced) instead of failing the next request with a 503."""
    monkeypatch.setattr(db_pool, "RECENTLY_USED_SECONDS", 60.0)
    checks = []
    real_check = ConnectionPool.check_connection
    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(lambda conn: (checks.append(conn), real_check(conn))))
    with pool.connection() as conn:
        victim = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with pool.connection() as conn:  # used a moment ago and well: lent without a check
        assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == victim
    checks_before = len(checks)
    assert end_backends("pid = %s", [victim]) == 1

    with pool.connection() as conn:
        answer = conn.execute("SELECT pg_backend_pid()").fetchone()[0]

    assert answer != victim
    assert len(checks) > checks_before


def test_when_every_pooled_connection_was_ended_one_wait_gets_a_new_one(db):
    """A restart ends all of them. psycopg_pool, finding a second broken connection within one
    getconn, waits a second before the next try: the request's whole wait. The first broken one
    has the others checked (and replaced) at once."""
    pool = NotingPool(
        kwargs=connection_kwargs(),
        min_size=3, max_size=3, open=False, timeout=1.0,
    )
    pool._check = functools.partial(db_pool.check_unless_recently_used, pool=pool)
    pool.open(wait=True)
    try:
        held = [pool.getconn() for _ in range(3)]
        victims = [conn.execute("SELECT pg_backend_pid()").fetchone()[0] for conn in held]
        for conn in held:
            pool.putconn(conn)  # all three given back a moment ago
        assert end_backends("pid = ANY(%s)", [victims]) == 3

        # Within the one second a request waits (PoolTimeout after it, as without the check).
        with pool.connection() as conn:
            answer = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert answer not in victims
    finally:
        pool.close()


def test_ending_every_session_of_a_running_server_costs_no_request_a_503(live_platform, user):
    """As after a PostgreSQL restart: every pooled connection of the platform's processes, all
    given back moments ago, is ended by the server; the next requests are all answered."""
    from identities.tokens import do_create_api_token

    token = do_create_api_token(user, name="pool")[1]

    def status() -> int:
        request = urllib.request.Request(f"{live_platform.url}/api/user/config", headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert [status() for _ in range(6)] == [200] * 6
    assert end_backends("application_name = %s", [live_platform.application_name]) >= 1

    assert [status() for _ in range(6)] == [200] * 6
