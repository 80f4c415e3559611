"""fullstackagent.threaded_http: ASGI http scopes answered by Django's WSGI handler on a thread pool.

The application is driven directly with asyncio: a scope dict, a ``receive`` that hands out the
request's messages and a ``send`` that keeps every message it is given. Requests that reach
PostgreSQL run on the pool's threads, which see only committed data (hence transactional_db).
"""

import asyncio
import json
import time
import threading
from io import BytesIO

import pytest
from django.conf import settings
from django.core.signals import request_finished
from django.db import connection

from fullstackagent.threaded_http import ThreadedDjangoHTTP
from identities.tokens import do_create_api_token
from projects.models import Project

XTERM_JS = "@xterm/xterm/lib/xterm.js"  # served by WhiteNoise from node_modules as /static/vendor/...


@pytest.fixture
def app():
    application = ThreadedDjangoHTTP(threads=2)
    yield application
    application.executor.shutdown(wait=True)


def http_scope(method, path, *, headers=(), query_string=b"", root_path=""):
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": query_string,
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def run(app, scope, incoming):
    """Runs one ASGI call; ``incoming`` are the messages receive() hands out, in order. Returns
    every message the application sent."""
    sent = []
    pending = list(incoming)

    async def receive():
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()  # like a server: nothing more until the client does something

    async def send(message):
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=30))
    return sent


def body_messages(*chunks):
    """http.request messages carrying ``chunks``, all but the last with more_body."""
    return [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]


def request(app, method, path, *, chunks=(b"",), **scope_options):
    return run(app, http_scope(method, path, **scope_options), body_messages(*chunks))


def whole_response(sent):
    """(status, headers, body) of an answer sent as one start and one final body message."""
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert sent[1].get("more_body", False) is False
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


# --- environ(): the ASGI scope as a WSGI environ ---------------------------------------------------


def test_environ_maps_scope_headers_and_body():
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/agent/api/café",
        "root_path": "/agent",
        "query_string": b"page=2&name=%C3%A9",
        "headers": [
            (b"host", b"agent.example.com"),
            (b"content-type", b"application/json"),
            (b"content-length", b"999"),
            (b"accept", b"text/html"),
            (b"accept", b"application/json"),
            (b"cookie", b"sessionid=abc"),
            (b"cookie", b"csrftoken=xyz"),
            (b"x-user", b"real"),
            (b"x_user", b"spoofed"),
        ],
        "client": ("203.0.113.7", 41234),
        "server": ("10.0.0.2", 8000),
    }
    body = BytesIO(b'{"a": 1}')
    body.seek(3)  # environ() measures the whole body and hands it over from its start

    environ = ThreadedDjangoHTTP.environ(scope, body)

    assert environ.pop("wsgi.input") is body
    assert body.read() == b'{"a": 1}'
    assert environ == {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/agent",
        "PATH_INFO": "/api/caf\xc3\xa9",  # PEP 3333: the UTF-8 bytes as latin-1 text
        "QUERY_STRING": "page=2&name=%C3%A9",
        "SERVER_NAME": "10.0.0.2",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": "8",  # the body received, not the header's claim
        "CONTENT_TYPE": "application/json",
        "HTTP_HOST": "agent.example.com",
        "HTTP_ACCEPT": "text/html,application/json",
        "HTTP_COOKIE": "sessionid=abc; csrftoken=xyz",
        "HTTP_X_USER": "real",  # x_user (underscore) is dropped, not folded into it
        "REMOTE_ADDR": "203.0.113.7",
        "REMOTE_PORT": "41234",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.errors": environ["wsgi.errors"],
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def test_environ_of_a_minimal_scope_uses_defaults():
    scope = {"type": "http", "method": "GET", "path": "/healthz", "headers": [], "server": ("/run/web.sock", None)}

    environ = ThreadedDjangoHTTP.environ(scope, BytesIO(b""))

    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/healthz"
    assert environ["QUERY_STRING"] == ""
    assert environ["CONTENT_LENGTH"] == "0"
    assert environ["SERVER_NAME"] == "/run/web.sock"
    assert environ["SERVER_PORT"] == "80"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["wsgi.url_scheme"] == "http"
    assert "REMOTE_ADDR" not in environ
    assert "CONTENT_TYPE" not in environ
    assert not [key for key in environ if key.startswith("HTTP_")]


# --- whole answers, through Django ----------------------------------------------------------------


def test_healthz_is_answered_whole_from_the_loop(app, db):
    from django.core.cache import cache

    from fullstackagent.health import SCHEDULER_HEARTBEAT_KEY

    cache.set(SCHEDULER_HEARTBEAT_KEY, time.time(), timeout=None)  # a scan just ran
    status, headers, body = whole_response(request(app, "GET", "/healthz"))

    assert status == 200
    assert headers[b"content-type"] == b"application/json"
    assert b"no-cache" in headers[b"cache-control"]
    assert json.loads(body) == {"status": "ok", "database": "ok", "redis": "ok", "scheduler": "ok"}


def test_unknown_api_path_is_the_json_404(app, db):
    status, headers, body = whole_response(request(app, "GET", "/api/no-such-thing", query_string=b"x=1"))

    assert status == 404
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"message": "No API route /api/no-such-thing.", "code": "NOT_FOUND"}


def test_root_path_becomes_the_script_name_django_sees(app, db):
    status, _, body = whole_response(request(app, "GET", "/agent/api/no-such-thing", root_path="/agent"))

    assert status == 404
    # request.path is SCRIPT_NAME + PATH_INFO: the prefix is neither lost nor doubled.
    assert json.loads(body) == {"message": "No API route /agent/api/no-such-thing.", "code": "NOT_FOUND"}


def test_post_to_healthz_is_405_once_csrf_passes(app, db):
    csrf_token = "a" * 32
    status, headers, body = whole_response(request(
        app,
        "POST",
        "/healthz",
        chunks=(b"x=1",),
        headers=[
            # Two cookie headers: Django finds the CSRF cookie only if they are joined with "; ".
            (b"cookie", b"theme=dark"),
            (b"cookie", f"csrftoken={csrf_token}".encode()),
            (b"x-csrftoken", csrf_token.encode()),
            (b"content-type", b"application/x-www-form-urlencoded"),
        ],
    ))

    assert status == 405
    assert headers[b"allow"] == b"GET"
    assert body == b""


def test_post_without_csrf_token_is_refused_before_the_view(app, db):
    status, _, _ = whole_response(request(app, "POST", "/healthz", chunks=(b"x=1",)))

    assert status == 403


# --- streamed answers ------------------------------------------------------------------------------


def test_static_file_streams_complete_in_chunks(app, db):
    expected = (settings.NODE_MODULES_DIR / XTERM_JS).read_bytes()
    finished_in = []

    def record(sender, **kwargs):
        finished_in.append(threading.current_thread().name)

    request_finished.connect(record)
    try:
        sent = request(app, "GET", f"/static/vendor/{XTERM_JS}")
    finally:
        request_finished.disconnect(record)

    start, *chunks, end = sent
    assert start["type"] == "http.response.start"
    assert start["status"] == 200
    assert dict(start["headers"])[b"content-length"] == str(len(expected)).encode()
    assert len(chunks) > 1
    assert all(message["type"] == "http.response.body" and message["more_body"] is True for message in chunks)
    assert end == {"type": "http.response.body"}
    assert b"".join(message["body"] for message in chunks) == expected
    # The streamed response was closed (request_finished), on the pool thread that iterated it.
    assert len(finished_in) == 1
    assert finished_in[0].startswith("http")


# --- request bodies --------------------------------------------------------------------------------


def test_body_in_several_chunks_reaches_django_intact(app, transactional_db, user):
    _, clear_token = do_create_api_token(user, name="ci")
    body = json.dumps({"name": "Chunked Blog", "description": "Über boats ⛵ and more"}, ensure_ascii=False).encode()
    sail = body.index("⛵".encode())
    chunks = (body[:5], body[5:sail + 1], body[sail + 1:sail + 2], body[sail + 2:])  # splits inside ⛵

    sent = request(
        app,
        "POST",
        "/api/projects",
        chunks=chunks,
        headers=[
            (b"authorization", f"Bearer {clear_token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", b"3"),  # a wrong header: the body received is what counts
        ],
    )

    status, _, answer = whole_response(sent)
    assert status == 201, answer
    created = json.loads(answer)
    assert (created["name"], created["description"]) == ("Chunked Blog", "Über boats ⛵ and more")
    project = Project.objects.get(pk=created["id"])
    assert (project.user, project.name, project.description) == (user, "Chunked Blog", "Über boats ⛵ and more")


def test_disconnect_before_the_body_ends_sends_nothing_and_runs_nothing(app, transactional_db, user):
    _, clear_token = do_create_api_token(user, name="ci")
    scope = http_scope(
        "POST",
        "/api/projects",
        headers=[(b"authorization", f"Bearer {clear_token}".encode()), (b"content-type", b"application/json")],
    )
    # A whole, valid body, but the client said more was coming and then went away.
    incoming = [
        {"type": "http.request", "body": b'{"name": "Ghost"}', "more_body": True},
        {"type": "http.disconnect"},
    ]

    sent = run(app, scope, incoming)

    assert sent == []
    assert Project.objects.count() == 0


# --- database connections --------------------------------------------------------------------------


def test_request_finished_gives_back_the_threads_database_connection(transactional_db):
    app = ThreadedDjangoHTTP(threads=1)  # one thread: the request's thread is the one inspected
    try:
        status, _, body = whole_response(request(app, "GET", "/healthz"))
        held_after = app.executor.submit(lambda: connection.connection).result()
    finally:
        app.executor.shutdown(wait=True)

    assert status == 200
    assert json.loads(body)["database"] == "ok"  # the thread did open a connection
    assert held_after is None


# --- other scopes ----------------------------------------------------------------------------------


def test_lifespan_startup_and_shutdown_are_acknowledged(app):
    sent = run(app, {"type": "lifespan", "asgi": {"version": "3.0"}},
               [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


def test_websocket_scope_is_refused(app):
    with pytest.raises(ValueError, match="cannot serve a 'websocket' scope"):
        run(app, {"type": "websocket", "path": "/ws/"}, [])


class _Answer:
    """What a WSGI application returns: an iterable with close() (PEP 3333)."""

    def __init__(self, body: bytes):
        self.body = body

    def __iter__(self):
        return iter([self.body])

    def close(self):
        pass


def _blocking_handler(release: threading.Event, threads_seen: dict):
    """A WSGI application standing in for Django: /slow waits for ``release`` (a cluster that does
    not answer), anything else answers at once; each records the thread it ran on."""

    def handler(environ, start_response):
        threads_seen[environ["PATH_INFO"]] = threading.current_thread().name
        if environ["PATH_INFO"] == "/slow":
            release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _Answer(environ["PATH_INFO"].encode())

    return handler


def _both(app, fast_after: float):
    """Sends /slow, then /fast ``fast_after`` seconds later; returns when /fast was answered
    (seconds after it was sent) and whether /slow was still waiting then."""

    async def go():
        loop = asyncio.get_running_loop()
        slow_sent = []

        async def send_slow(message):
            slow_sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        slow = asyncio.ensure_future(app(http_scope("GET", "/slow"), receive, send_slow))
        await asyncio.sleep(fast_after)
        fast_sent = []

        async def send_fast(message):
            fast_sent.append(message)

        started = loop.time()
        fast = asyncio.ensure_future(app(http_scope("GET", "/fast"), receive, send_fast))
        done, _ = await asyncio.wait({fast}, timeout=2)
        answered_in = loop.time() - started if done else None
        slow_was_waiting = not slow.done()
        return slow, fast, answered_in, slow_was_waiting, fast_sent

    return go


def _slow_then_fast(threads_seen: dict, stuck_after: float):
    """One pool thread; /slow is sent, /fast 0.3 s later, /slow released after /fast was answered
    or 2 s passed. Returns (seconds /fast took or None, whether /slow was still waiting, /fast's
    messages)."""
    release = threading.Event()
    app = ThreadedDjangoHTTP(threads=1, stuck_after=stuck_after)
    app.handler = _blocking_handler(release, threads_seen)

    async def scenario():
        slow, fast, answered_in, slow_was_waiting, fast_sent = await _both(app, fast_after=0.3)()
        release.set()
        await asyncio.gather(slow, fast)
        return answered_in, slow_was_waiting, fast_sent

    try:
        return asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        release.set()
        app.executor.shutdown(wait=True)
        app.overflow.shutdown(wait=True)


@pytest.mark.serial  # answered within a second: run alone, not beside other workers
def test_a_request_stuck_on_the_only_thread_does_not_hold_up_the_next():
    threads_seen = {}

    answered_in, slow_was_waiting, fast_sent = _slow_then_fast(threads_seen, stuck_after=0.1)

    assert slow_was_waiting
    assert answered_in is not None and answered_in < 1
    assert [message.get("body") for message in fast_sent if message["type"] == "http.response.body"] == [b"/fast"]
    assert threads_seen["/slow"].startswith("http_")
    assert threads_seen["/fast"].startswith("http-overflow")


def test_a_request_busy_for_less_than_stuck_after_keeps_the_next_in_the_queue():
    threads_seen = {}

    answered_in, slow_was_waiting, _ = _slow_then_fast(threads_seen, stuck_after=30)

    # Not stuck yet: /fast waited for the pool's thread (no answer within 2 s), then ran on it.
    assert slow_was_waiting
    assert answered_in is None
    assert threads_seen["/fast"] == threads_seen["/slow"]


# --- the request-size limit (issue 14), under any ASGI server -------------------------------------


def test_a_body_over_the_limit_is_answered_413_without_reaching_django(app, settings):
    settings.REQUEST_BODY_MAX_BYTES = 64 * 1024
    started = []

    def count(**kwargs):
        started.append(kwargs)

    from django.core.signals import request_started

    request_started.connect(count)
    try:
        sent = request(app, "POST", "/api/projects", chunks=(b"x" * 40000, b"x" * 40000))
    finally:
        request_started.disconnect(count)

    status, headers, body = whole_response(sent)
    assert status == 413
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {
        "message": "The request body is larger than this endpoint accepts (64 KiB); nothing was done.",
        "code": "REQUEST_TOO_LARGE",
    }
    assert started == []


# --- the threads' hand-off ---------------------------------------------------------------------------


def test_threads_run_calls_off_the_loop_and_hand_back_results_and_exceptions():
    from fullstackagent.threaded_http import Threads

    threads = Threads(2, "handoff")

    def fail():
        raise ValueError("from the thread")

    async def scenario():
        names = await asyncio.gather(*(threads.run(lambda: threading.current_thread().name) for _ in range(20)))
        with pytest.raises(ValueError, match="from the thread"):
            await threads.run(fail)
        return names, threading.current_thread().name

    try:
        names, loop_thread = asyncio.run(scenario())
        started = len(threads._threads)
    finally:
        threads.shutdown(wait=True)

    assert set(names) <= {"handoff_0", "handoff_1"} and loop_thread not in names
    assert started <= 2  # started as calls arrived, never more than asked


def test_a_cancelled_wait_drops_the_answer_and_the_threads_go_on():
    from fullstackagent.threaded_http import Threads

    threads = Threads(1, "handoff")
    release = threading.Event()

    async def scenario():
        waiting = asyncio.ensure_future(threads.run(release.wait, 5))
        await asyncio.sleep(0.05)
        waiting.cancel()  # the client went away; the call still finishes on its thread
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return await threads.run(lambda: "next")

    try:
        assert asyncio.run(scenario()) == "next"
    finally:
        threads.shutdown(wait=True)
