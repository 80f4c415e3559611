"""Fixtures shared by every app's tests. Services (PostgreSQL, Redis) come from
fullstackagent.testing.plugin; these fixtures add users, clients and a real Celery worker."""

import asyncio
import subprocess
import time

import pytest

from fullstackagent.testing.processes import (
    CeleryWorker,
    PlatformServer,
    end_other_sessions,
    stop_fork_server,
    terminate,
    wait_for_connections_to_close,
)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's; at the end of the run, before the test database is dropped, the sessions
    still open on it (this process's pool, anything a test left behind) are ended: one would block
    the drop, and the database would stay on the server."""
    yield
    with django_db_blocker.unblock():
        end_other_sessions()


@pytest.fixture
def make_user(db, django_user_model):
    def make(username="alice", password="correct-horse-battery"):
        user = django_user_model.objects.create_user(username=username, password=password)
        from identities.services import record_password_identity

        record_password_identity(user)
        return user

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def other_user(make_user):
    return make_user("mallory")


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


def _purge_the_queue() -> None:
    """Messages earlier tests queued (services queue after commit, with no worker running) would
    be run by this test's worker against rows that are gone: the worker starts on an empty queue."""
    from fullstackagent.celery import app

    app.control.purge()


@pytest.fixture(scope="session", autouse=True)
def _fork_server():
    """The process the Celery workers and web servers of this test process are forked from
    (fullstackagent.testing.processes.fork_server), started by the first of them; ended with the run."""
    yield
    stop_fork_server()


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    _purge_the_queue()
    worker = CeleryWorker(tmp_path)
    yield worker
    worker.stop()
    # Captured by pytest and shown only when the test failed.
    print(f"--- celery worker log ---\n{worker.output()[-6000:]}")


@pytest.fixture
def start_celery_worker(transactional_db, tmp_path):
    _purge_the_queue()  # before the test, which may queue work for the workers it starts
    workers = []

    def start(**options):
        worker = CeleryWorker(tmp_path, **options)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture(scope="session")
def _platform_servers(django_db_setup, django_db_blocker, tmp_path_factory):
    """The run's web processes behind ``live_platform``, started once (two cost about 3 s of CPU
    to start) and stopped when the run ends, before the test database is dropped."""
    servers = []

    def current() -> PlatformServer:
        if not servers or servers[-1].process.poll() is not None:
            servers.append(PlatformServer(tmp_path_factory.mktemp("platform")))
        return servers[-1]

    yield current
    for server in servers:
        server.stop()
        with django_db_blocker.unblock():
            wait_for_connections_to_close(server.application_name)


@pytest.fixture
def live_platform(_platform_servers, transactional_db):
    """The real platform (its web server: pages, API, terminal websocket) on a free port, with this run's
    test database; ``live_platform.url`` is its address. Add the ``celery_worker`` fixture for
    the reconcilers. Data a test writes is committed (transactional_db), so the server sees it, and
    is gone after it (pytest-django empties the tables): the server is the run's, as pytest-django's
    own ``live_server`` is, and keeps no state of its own between tests but its connection pool
    (ids are never reused, so nothing cached for one test's rows can answer another's)."""
    server = _platform_servers()
    log_start = len(server.output())
    yield server
    print(f"--- web server log (this test) ---\n{server.output()[log_start:][-6000:]}")


@pytest.fixture
def browser_session_cookie(live_platform):
    """A function making a signed-in session for a user; returns the cookie for Playwright."""
    from django.conf import settings
    from django.test import Client

    def sign_in(user) -> dict:
        client = Client()
        client.force_login(user)
        return {
            "name": settings.SESSION_COOKIE_NAME,
            "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            "url": live_platform.url,
        }

    return sign_in


CHROMIUM_ARGS = [
    "--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    # Chromium 156 prepares its address bar's suggestion popup, two web pages of its own
    # (chrome://omnibox-popup.top-chrome), in a renderer process for every browser context even
    # headless, where nothing shows it: measured here, a new context and page cost 0.40 s of CPU
    # with them and 0.24 s without (Puppeteer turns them off too).
    "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup",
]


@pytest.fixture(scope="session")
def _chromium_process(tmp_path_factory):
    """One headless Chromium (Debian's /usr/bin/chromium) for the run's browser tests, each of which
    connects to it and works in browser contexts of its own (separate cookies, storage and cache, as
    in a browser of its own). Starting a Chromium per test cost about 0.9 s of CPU each."""
    running = []

    def current() -> str:
        """The DevTools address of the run's Chromium, started again if it has exited."""
        if not running or running[-1][0].poll() is not None:
            running.append(_start_chromium(tmp_path_factory.mktemp("chromium")))
        return running[-1][1]

    yield current
    for process, _ in running:
        terminate(process)


def _start_chromium(directory):
    profile = directory / "profile"
    log = open(directory / "chromium.log", "w")
    process = subprocess.Popen(
        ["/usr/bin/chromium", *CHROMIUM_ARGS, "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    log.close()
    # Chromium writes the port it chose and the browser's DevTools path to this file once listening.
    active_port = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = active_port.read_text().split() if active_port.exists() else []
        if len(lines) == 2:
            return process, f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        if process.poll() is not None:
            break
        time.sleep(0.05)
    terminate(process)
    raise RuntimeError(f"Chromium did not start: {(directory / 'chromium.log').read_text()[-2000:]}")


@pytest.fixture(scope="session")
def _playwright():
    """One Playwright driver (a Node.js process, about 0.35 s of CPU to start) per test process,
    started at the first browser test. Its sync API marks its event loop as running in this thread
    after every call; between browser tests the mark is taken away (the loop waits, suspended, for
    the next call), so that the other tests run as without Playwright, and ``chromium`` puts it back
    for each browser test, before the test's first call."""
    from playwright.sync_api import sync_playwright

    started = []

    def current():
        if not started:
            playwright = sync_playwright().start()
            started.append((playwright, asyncio.get_running_loop()))
        return started[0]

    yield current
    if started:
        playwright, loop = started[0]
        asyncio._set_running_loop(loop)
        playwright.stop()
        asyncio._set_running_loop(None)


@pytest.fixture
def chromium(_playwright, _chromium_process, monkeypatch, transactional_db):
    """The run's headless Chromium driven by Playwright, for this test; the contexts and pages the
    test opened are closed after it, before its data is emptied (transactional_db): its pages stop
    calling the run's server first."""
    from django.db import connections

    # Playwright's sync API keeps an event loop running in this thread, which makes Django refuse
    # ORM calls from the test body; the test still runs one thing at a time, so they are safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    playwright, loop = _playwright()
    asyncio._set_running_loop(loop)
    try:
        browser = playwright.chromium.connect_over_cdp(_chromium_process())
        # Pages as for someone who asked for less motion, unless a test says otherwise: the
        # transitional statuses' spinner and the terminal's blinking cursor kept Chromium drawing
        # frames (measured idle: a tenth of a CPU for a list with a spinner, 0.15 for a terminal).
        new_context = browser.new_context
        browser.new_context = lambda **options: new_context(**{"reduced_motion": "reduce", **options})
        yield browser
        # Closes the contexts this connection made, then disconnects; the browser stays for the next test.
        browser.close()
    finally:
        # While Playwright's loop runs, Django keeps this thread's connections apart from the ones
        # the test database was set up with (asgiref's per-context storage); close them, or the
        # test database cannot be dropped at the end of the run.
        connections.close_all()
        asyncio._set_running_loop(None)
