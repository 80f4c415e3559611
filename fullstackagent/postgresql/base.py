"""Django's PostgreSQL backend, with the connection pool's check of fullstackagent.db_pool.

Django builds the pool itself (with ``check=ConnectionPool.check_connection`` under
CONN_HEALTH_CHECKS) and takes no other check; this wrapper swaps in the one that skips connections
used a moment ago (and checks the pool's other idle ones when one fails), before the pool lends
anything."""

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
            pool._reset = db_pool.note_return
        return pool
