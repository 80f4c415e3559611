"""The connection pool's health check, paid only by connections that sat idle.

With CONN_HEALTH_CHECKS, Django asks psycopg_pool to check every connection it lends
(ConnectionPool.check_connection: one round trip to PostgreSQL), that is, once per request and per
terminal admission: a tenth of a cheap request's time went to it. A connection given back a moment
ago by a request that used it is as healthy as a check would find it, unless the server ended it
since: a server that ends a connection (a restart, pg_terminate_backend, a crash) sends its FATAL
message or closes the socket, so an idle connection with anything to read is checked too (a
zero-timeout poll of its socket, not a round trip). One that sat idle may have been cut silently
(a failover, a NAT timeout) and is always checked. A connection that breaks silently within that
moment fails its request, which answers 503 and resets the pool (fullstackagent.availability), as
any failure during a query does.

A connection that fails its check has the other idle ones checked at once: a restart ends them
all, and psycopg_pool, finding a second broken one within one request's wait, backs off for a
second before trying again, which the request does not have (a 503).
"""

import select
import time
import weakref

from psycopg_pool import ConnectionPool

# Seconds since its last return under which a connection is lent without a check.
RECENTLY_USED_SECONDS = 1.0

_returned_at: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def note_return(connection) -> None:
    """A connection is being given back to its pool (fullstackagent.postgresql.base). One that is
    not healthy (in a transaction, broken) is rolled back or discarded by the pool as it comes back."""
    _returned_at[connection] = time.monotonic()


def check_unless_recently_used(connection, pool: ConnectionPool | None = None) -> None:
    """The pool's ``check`` callback: raises (the pool discards the connection and lends another)
    when a connection that was idle for a while, or that the server ended, no longer answers;
    ``pool``'s other idle connections are checked then too."""
    returned = _returned_at.get(connection)
    if returned is not None and time.monotonic() - returned < RECENTLY_USED_SECONDS and not _server_spoke(connection):
        return
    try:
        ConnectionPool.check_connection(connection)
    except Exception:
        if pool is not None:
            pool.check()  # each idle connection: kept if it answers, replaced if not
        raise


def _server_spoke(connection) -> bool:
    """Whether an idle connection has input waiting: nothing is sent to one that is well (no
    LISTEN here), so anything is the server's goodbye or end-of-file."""
    try:
        readable, _, _ = select.select([connection.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
