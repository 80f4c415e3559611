"""Django's PostgreSQL backend, with the connection pool's check of fullstackagent.db_pool.

Django builds the pool itself (with ``check=ConnectionPool.check_connection`` under
CONN_HEALTH_CHECKS) and takes no other check; this wrapper swaps in the one that skips connections
used a moment ago (and checks the pool's other idle ones when one fails), before the pool lends
anything, and notes when each connection is given back.

The return is noted here, as Django gives the connection back, and not by the pool's ``reset``
callback: with a ``reset``, psycopg_pool returns every connection through its maintenance thread
(a queue put, a wake-up, a second thread taking the GIL), which cost the authenticated no-op
request about a tenth of its CPU (py-spy on the web process, bench/api.py).

Timestamps are read by psycopg's own loader (C, with psycopg's binary package), not Django's: see
UtcTimestamptzLoader."""

import datetime
import functools

import psycopg
from django.db.backends.postgresql import base
from psycopg.adapt import AdaptersMap, Loader
from psycopg.pq import Format
from psycopg_pool import ConnectionPool

from fullstackagent import db_pool

_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(psycopg.adapters.types["timestamptz"].oid, Format.TEXT)


class UtcTimestamptzLoader(Loader):
    """Reads a timestamptz as Django's own loader does (an aware datetime in UTC), at C speed.

    Django's loader subclasses psycopg's Python one (the C one cannot be subclassed) to set the
    datetime's tzinfo: every timestamp was parsed in Python, about 3 us each. A list of 50 projects
    reads 200 of them; that was a fifth of the list's CPU in the web process (bench/api.py). This one
    hands each value to psycopg's C loader, which already gives datetime.timezone.utc for a session
    in UTC (the time zone Django sets on every connection); in any other, it converts to UTC.
    ``timezone`` is what Django's create_cursor compares with the connection's before using it."""

    timezone = datetime.timezone.utc

    def __init__(self, oid, context=None):
        super().__init__(oid, context)
        load = _TIMESTAMPTZ_LOADER(oid, context).load
        if self.connection is not None and self.connection.info.timezone is datetime.timezone.utc:
            self.load = load
        else:
            self.load = lambda data: load(data).astimezone(datetime.timezone.utc)

    def load(self, data):  # replaced on each instance, in __init__
        raise NotImplementedError


@functools.cache
def _adapters(template: AdaptersMap) -> AdaptersMap:
    adapters = AdaptersMap(template)
    adapters.register_loader("timestamptz", UtcTimestamptzLoader)
    return adapters


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        if self.timezone is datetime.timezone.utc:
            params["context"] = _adapters(params["context"])
        return params

    @property
    def pool(self):
        pool = super().pool
        # Django passed check=ConnectionPool.check_connection; nothing has been lent yet when it
        # is swapped (the pool opens on first use), and it is swapped once per process.
        if pool is not None and pool._check == ConnectionPool.check_connection:
            pool._check = functools.partial(db_pool.check_unless_recently_used, pool=pool)
        return pool

    def _close(self):
        # Django's _close gives a pooled connection back (putconn) and forgets it.
        if self.connection is not None and self.pool:
            db_pool.note_return(self.connection)
        return super()._close()
