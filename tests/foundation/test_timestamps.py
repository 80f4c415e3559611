"""fullstackagent.postgresql's timestamp loader: psycopg's C loader, giving what Django's own gave
(aware datetimes in UTC, the same instants), with a session in UTC as Django sets it or in any other."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from psycopg.pq import Format

from fullstackagent.postgresql.base import _TIMESTAMPTZ_LOADER, UtcTimestamptzLoader

pytestmark = pytest.mark.django_db

UTC = datetime.timezone.utc
INSTANT = datetime.datetime(2026, 12, 2, 17, 30, 5, 123456, tzinfo=UTC)


def read(cursor, sql, params=()):
    cursor.execute(sql, params)
    return cursor.fetchone()[0]


def test_a_timestamp_reads_as_django_wants_it_through_the_c_loader():
    user = get_user_model().objects.create_user(username="clock", password=None, date_joined=INSTANT)

    joined = get_user_model().objects.values_list("date_joined", flat=True).get(pk=user.pk)

    assert joined == INSTANT and joined.tzinfo is UTC
    with connection.cursor() as cursor:
        assert connection.connection.info.timezone is UTC  # Django put the session in UTC
        oid = connection.connection.adapters.types["timestamptz"].oid
        assert connection.connection.adapters.get_loader(oid, Format.TEXT) is UtcTimestamptzLoader
        loader = UtcTimestamptzLoader(oid, connection.connection)
        # The C loader's own method, not a Python one around it.
        assert type(loader.load.__self__) is _TIMESTAMPTZ_LOADER
        value = read(cursor, "SELECT %s::timestamptz", [INSTANT])
    assert value == INSTANT and value.tzinfo is UTC


def test_a_session_in_another_time_zone_still_reads_utc():
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Asia/Tokyo'")
        try:
            assert read(cursor, "SELECT %s::timestamptz::text", [INSTANT]) == "2026-12-03 02:30:05.123456+09"
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")
    # A cursor made while the session was elsewhere (the loader decides when it is made).
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Asia/Tokyo'")
        try:
            with connection.cursor() as other:
                value = read(other, "SELECT %s::timestamptz", [INSTANT])
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")
    assert value == INSTANT and value.tzinfo is UTC
