"""Fast failure and fast recovery when PostgreSQL goes away.

While the database is unreachable every request answers 503 within about a second (the pool's
DATABASE_POOL_TIMEOUT_SECONDS), never a 500 after a ten-second wait. After a connection failure the
process's connection pool is thrown away: psycopg_pool retries a failed connection with a growing
backoff (1, 2, 4, 8 ... s), so a pool that lived through an outage kept failing for 10-20 s after
PostgreSQL was back; a new pool connects at once. Workers do the same after a failed task
(fullstackagent.celery).
"""

import logging
import sys

from django.db import connections
from django.http import HttpResponse, JsonResponse
from rest_framework.exceptions import APIException

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1
UNAVAILABLE_MESSAGE = "The service is briefly unavailable (its database cannot be reached). Try again in a moment."


def is_database_unavailable(error: BaseException | None) -> bool:
    """A failure to reach PostgreSQL (no connection from the pool, a connection refused or cut),
    as opposed to an error PostgreSQL reported (a deadlock, a constraint): those have a SQLSTATE,
    except the connection-exception class 08 and server shutdown 57P0x."""
    from psycopg import OperationalError as PsycopgOperationalError
    from psycopg_pool import PoolTimeout

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, PoolTimeout):
            return True
        if isinstance(error, PsycopgOperationalError):
            sqlstate = getattr(error, "sqlstate", None)
            return sqlstate is None or sqlstate.startswith("08") or sqlstate.startswith("57P0")
        error = error.__cause__ or error.__context__
    return False


def reset_database_pools() -> None:
    """Drops this process's connection pools (and this thread's connection) so the next query
    builds a fresh pool that connects at once. Other threads' borrowed connections are closed
    when they give them back to the closed pool."""
    for connection in connections.all(initialized_only=True):
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - the connection is broken; closing it is best effort
            pass
        # Django keeps the pool per alias on the class (DatabaseWrapper._connection_pools); its
        # close_pool() waits up to 5 s for the pool's workers, which a failing request must not.
        pools = getattr(type(connection), "_connection_pools", {})
        pool = pools.pop(connection.alias, None)
        if pool is not None:
            try:
                pool.close(timeout=0)
            except Exception:  # noqa: BLE001
                pass


class DatabaseUnavailable(APIException):
    status_code = 503
    default_detail = UNAVAILABLE_MESSAGE
    default_code = "database_unavailable"
    wait = RETRY_AFTER_SECONDS  # becomes Retry-After (fullstackagent.exceptions)


def database_unavailable() -> DatabaseUnavailable:
    """For the API's exception handler: resets the pools and gives the 503 to answer with."""
    logger.warning("database unavailable during an API request; connection pool reset")
    reset_database_pools()
    return DatabaseUnavailable()


def unavailable_response(request) -> HttpResponse:
    if request.path.startswith("/api/"):
        response = JsonResponse({"message": UNAVAILABLE_MESSAGE, "code": "DATABASE_UNAVAILABLE"}, status=503)
    else:
        response = HttpResponse(UNAVAILABLE_MESSAGE, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def on_request_exception(sender, request=None, **kwargs):
    """``got_request_exception``: a request failed because the database is unreachable. Marks the
    request (the middleware turns its 500 into a 503) and resets the pools."""
    error = sys.exc_info()[1]
    if request is not None and is_database_unavailable(error):
        request.database_unavailable = True
        logger.warning("database unavailable during %s %s; connection pool reset", request.method, request.path)
        reset_database_pools()


class DatabaseUnavailableMiddleware:
    """First in MIDDLEWARE, so it sees the response of a failure anywhere below (a view, the
    session or authentication middleware), which Django has already turned into a 500."""

    def __init__(self, get_response):
        from django.core.signals import got_request_exception

        self.get_response = get_response
        got_request_exception.connect(on_request_exception, dispatch_uid="fullstackagent.availability")

    def __call__(self, request):
        response = self.get_response(request)
        if getattr(request, "database_unavailable", False):
            return unavailable_response(request)
        return response

    def process_exception(self, request, exception):
        """A view failed on the database: answer 503 at once. Left to Django, the 500 page's own
        rendering (session, user, context processors) would wait for the pool again, a second each."""
        if is_database_unavailable(exception):
            logger.warning("database unavailable during %s %s; connection pool reset", request.method, request.path)
            reset_database_pools()
            return unavailable_response(request)
        return None
