"""Django's PostgreSQL backend, with the connection pool's check of fullstackagent.db_pool.

Django builds the pool itself (with ``check=ConnectionPool.check_connection`` under
CONN_HEALTH_CHECKS) and takes no other check; this wrapper swaps in the one that skips connections
used a moment ago (and checks the pool's other idle ones when one fails), before the pool lends
anything, and notes when each connection is given back.

The return is noted here, as Django gives the connection back, and not by the pool's ``reset``
callback: with a ``reset``, psycopg_pool returns every connection through its maintenance thread
(a queue put, a wake-up, a second thread taking the GIL), which cost the authenticated no-op
request about a tenth of its CPU (py-spy on the web process, bench/api.py)."""

import functools

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

from fullstackagent import db_pool


class DatabaseWrapper(base.DatabaseWrapper):
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
