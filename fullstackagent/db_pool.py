"""The connection pool's health check, paid only by connections that sat idle.

With CONN_HEALTH_CHECKS, Django asks psycopg_pool to check every connection it lends
(ConnectionPool.check_connection: one round trip to PostgreSQL), that is, once per request and per
terminal admission: a tenth of a cheap request's time went to it. A connection given back a moment
ago by a request that used it is as healthy as a check would find it; one that sat idle may have
been cut (a PostgreSQL restart, a failover, a NAT timeout) and is still checked. A connection that
breaks within that moment fails its request, which answers 503 and resets the pool
(fullstackagent.availability), as any failure during a query does.
"""

import time
import weakref

from psycopg_pool import ConnectionPool

# Seconds since its last return under which a connection is lent without a check.
RECENTLY_USED_SECONDS = 1.0

_returned_at: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def note_return(connection) -> None:
    """The pool's ``reset`` callback: the connection came back healthy (idle, no transaction)."""
    _returned_at[connection] = time.monotonic()


def check_unless_recently_used(connection) -> None:
    """The pool's ``check`` callback: raises (the pool discards the connection and lends another)
    when a connection that was idle for a while no longer answers."""
    returned = _returned_at.get(connection)
    if returned is not None and time.monotonic() - returned < RECENTLY_USED_SECONDS:
        return
    ConnectionPool.check_connection(connection)
