"""HTTP for the ASGI server: Django's synchronous handler in a thread pool, one thread hop a request.

Every view, middleware and ORM call of this platform is synchronous. Under Django's ASGIHandler a
request crosses between the event loop and threads several times: any synchronous-only middleware
makes Django wrap the stack in sync_to_async, call the inner handler back through async_to_sync
and the view through sync_to_async again, each crossing waiting for a busy event loop. Under load
those crossings, not the work, set the latency (bench/api.py measured the same 404 at 2.5 ms a
request and a p99 of about a second with 20 clients).

This application reads the request body on the event loop, then runs Django's WSGI handler (the
same middleware, views and signals, so database connections are opened and returned exactly as
under any WSGI server) on a pool of threads, and sends the answer from the loop. Streaming
responses (static files) are iterated in the worker thread and sent chunk by chunk. Websockets
never come here: fullstackagent.asgi routes them to Channels.

The pool is small (HTTP_THREADS, 2 by default): the work is Python under one GIL, and more
threads only take turns at it; with 2, bench/api.py served 10-45 % more requests a second than
with 4, and create-project's p99 was half. A few requests wait on something else for long (a user's cluster
validating a kubeconfig, an upload chunk written into a pod, a sign-in provider). So that they
cannot hold every thread, a request that finds all of them busy and at least one busy for more
than STUCK_AFTER seconds runs on an overflow pool instead of queueing behind it.
"""

import asyncio
import functools
import itertools
import logging
import queue
import sys
import threading
import time
from concurrent.futures import Future
from tempfile import SpooledTemporaryFile

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from fullstackagent import request_limits

logger = logging.getLogger(__name__)

# Bodies above this size are spooled to disk while they arrive (Django's own threshold).
_SPOOL_THRESHOLD = 2.5 * 1024 * 1024
# A request running this long on a pool thread is waiting on something, not computing: under full
# load a request holds its thread for tens of milliseconds.
STUCK_AFTER = 0.5
# Threads for requests that arrive while the pool is held by waiting ones.
OVERFLOW_THREADS = 32
# What _read_body returns for a body over its path's limit.
_TOO_LARGE = object()


class Threads:
    """Threads (up to ``max_threads``, started as calls arrive) that run calls for the event loop and
    hand each result back with one ``call_soon_threadsafe``.

    ``loop.run_in_executor`` with a ThreadPoolExecutor wraps every call in a concurrent.futures
    Future (its lock and condition) chained to an asyncio one by two more callbacks: 44 us of CPU per
    call on this machine against 19-28 us for this hand-off (uvloop, two threads), 3-4 % of an API
    404. The threads are daemons: a request stuck on an outside service does not hold up the exit
    of a stopped web process once the server's graceful shutdown is over."""

    def __init__(self, max_threads: int, name: str):
        self.max_threads = max_threads
        self.name = name
        self._calls = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # released by a thread each time it waits for a call
        self._threads = []
        self._lock = threading.Lock()

    async def run(self, function, *args):
        """Runs ``function(*args)`` on one of the threads; its result (or exception) here."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def settle(result, error):
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:
                pass  # the loop closed meanwhile: nobody waits for this answer any more

        self._put(function, args, settle)
        return await future

    def submit(self, function, *args) -> Future:
        """From outside the event loop (tests, shutdown work): a concurrent.futures Future."""
        future = Future()
        self._put(function, args, functools.partial(_settle, future))
        return future

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._calls.put(None)
        if wait:
            for thread in threads:
                thread.join()

    def _put(self, function, args, settle) -> None:
        self._calls.put((function, args, settle))
        # A thread that is waiting takes it; otherwise one more thread, up to the limit (as
        # ThreadPoolExecutor decides).
        if self._idle.acquire(blocking=False):
            return
        with self._lock:
            if len(self._threads) < self.max_threads:
                thread = threading.Thread(target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()

    def _work(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                return
            function, args, settle = call
            try:
                outcome = (function(*args), None)
            except BaseException as error:  # noqa: BLE001 - handed to the caller, which raises it
                outcome = (None, error)
            settle(*outcome)
            call = function = args = settle = outcome = None  # nothing of a request kept while idle
            self._idle.release()


def _settle(future, result, error) -> None:
    """Gives ``future`` (asyncio's or concurrent.futures') its result or exception."""
    if future.done():  # the waiting task was cancelled
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class ThreadedDjangoHTTP:
    """An ASGI application for ``http`` scopes that runs Django's WSGI handler in ``threads`` threads."""

    def __init__(self, threads: int | None = None, stuck_after: float = STUCK_AFTER):
        self.threads = threads or settings.HTTP_THREADS
        self.stuck_after = stuck_after
        self.handler = WSGIHandler()
        self.executor = Threads(self.threads, "http")
        self.overflow = Threads(OVERFLOW_THREADS, "http-overflow")
        self._pending = 0  # requests handed to the pool and not answered yet (event loop only)
        self._started = {}  # request number -> when a pool thread started it
        self._started_lock = threading.Lock()
        self._numbers = itertools.count()

    def _pool_is_held(self) -> bool:
        """Every pool thread is taken and one of them has been for longer than stuck_after."""
        if self._pending < self.threads:
            return False
        with self._started_lock:
            oldest = min(self._started.values(), default=None)
        return oldest is not None and time.monotonic() - oldest > self.stuck_after

    async def _run(self, *args):
        if self._pool_is_held():
            return await self.overflow.run(self._respond, *args)
        number = next(self._numbers)

        def timed(*args):
            with self._started_lock:
                self._started[number] = time.monotonic()
            try:
                return self._respond(*args)
            finally:
                with self._started_lock:
                    del self._started[number]

        self._pending += 1
        try:
            return await self.executor.run(timed, *args)
        finally:
            self._pending -= 1

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            raise ValueError(f"ThreadedDjangoHTTP cannot serve a {scope['type']!r} scope")
        # A body over its path's limit is refused before it is read when its length is announced,
        # as soon as it passes the limit when it is chunked (fullstackagent.request_limits).
        limit = request_limits.body_limit(scope["path"])
        if request_limits.announced_length(scope["headers"]) > limit:
            return await self._refuse_too_large(scope, limit, send)
        body = await self._read_body(receive, limit)
        if body is None:
            return  # the client went away before sending its whole request
        if body is _TOO_LARGE:
            return await self._refuse_too_large(scope, limit, send)
        loop = asyncio.get_running_loop()
        try:
            start, chunks = await self._run(loop, scope, body, send)
        finally:
            body.close()
        if start is not None:  # a whole (not streamed) answer: sent from here, no thread waits on it
            await send(start)
            await send({"type": "http.response.body", "body": chunks})

    @staticmethod
    async def _lifespan(receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    async def _read_body(receive, limit: int):
        body = SpooledTemporaryFile(max_size=_SPOOL_THRESHOLD)
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body.close()
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                body.close()
                return _TOO_LARGE
            body.write(chunk)
            if not message.get("more_body", False):
                body.seek(0)
                return body

    @staticmethod
    async def _refuse_too_large(scope, limit: int, send):
        accept = b",".join(value for name, value in scope.get("headers", []) if name.lower() == b"accept")
        content_type, payload = request_limits.too_large_response(scope["path"], accept.decode("latin1"), limit)
        # The connection is closed after the answer: the rest of the body is never read (the server
        # stops reading from the socket once a little of it is buffered), nor is "100 Continue" sent.
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _respond(self, loop, scope, body, send):
        """In a pool thread: Django answers. A whole answer is returned as (start message, bytes);
        a streamed one is sent from here, chunk by chunk, and (None, None) returned."""
        state = {}

        def start_response(status, headers, exc_info=None):
            state["start"] = {
                "type": "http.response.start",
                "status": int(status.split(" ", 1)[0]),
                "headers": [(name.lower().encode("latin1"), value.encode("latin1")) for name, value in headers],
            }

        response = self.handler(self.environ(scope, body), start_response)
        try:
            if not getattr(response, "streaming", False):
                return state["start"], b"".join(response)

            def send_now(message):
                asyncio.run_coroutine_threadsafe(send(message), loop).result()

            send_now(state["start"])
            for chunk in response:
                if chunk:
                    send_now({"type": "http.response.body", "body": chunk, "more_body": True})
            send_now({"type": "http.response.body"})
            return None, None
        finally:
            response.close()  # request_finished: the thread's database connection goes back

    @staticmethod
    def environ(scope, body) -> dict:
        """The WSGI environ of an ASGI http scope (PEP 3333; the ASGI spec's own mapping)."""
        root_path = scope.get("root_path", "")
        path = scope["path"]
        if root_path and path.startswith(root_path):
            path = path[len(root_path):]
        server = scope.get("server") or ("localhost", 80)
        body.seek(0, 2)
        length = body.tell()
        body.seek(0)
        environ = {
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": root_path.encode("utf8").decode("latin1"),
            "PATH_INFO": path.encode("utf8").decode("latin1"),
            "QUERY_STRING": scope.get("query_string", b"").decode("latin1"),
            "SERVER_NAME": str(server[0]),
            "SERVER_PORT": str(server[1] if server[1] is not None else 80),
            "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
            "CONTENT_LENGTH": str(length),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.input": body,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if scope.get("client"):
            environ["REMOTE_ADDR"] = scope["client"][0]
            environ["REMOTE_PORT"] = str(scope["client"][1])
        for raw_name, raw_value in scope.get("headers", []):
            name = raw_name.decode("latin1")
            if "_" in name:
                continue  # would pass for its hyphenated twin (X_Auth as X-Auth); WSGI servers drop them
            name = name.upper().replace("-", "_")
            value = raw_value.decode("latin1")
            if name == "CONTENT_LENGTH":
                continue  # the body as received (de-chunked by the server) is what Django reads
            key = "CONTENT_TYPE" if name == "CONTENT_TYPE" else f"HTTP_{name}"
            if key in environ:
                # Repeated headers are one comma-separated value, except cookies (RFC 6265: "; ").
                environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
            else:
                environ[key] = value
        return environ
