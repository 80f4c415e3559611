import time

import pytest

from databases.models import Database
from fullstackagent.status import ResourceStatus
from projects import services
from sandboxes.models import Sandbox


@pytest.fixture
def signed_in_page(chromium, live_platform, browser_session_cookie):
    """A function opening a browser page signed in as the given user (clipboard allowed), at a
    desktop or phone viewport. Console errors are collected on ``page.console_errors``."""
    contexts = []

    def open_page(user, width=1280, height=860):
        context = chromium.new_context(
            viewport={"width": width, "height": height},
            permissions=["clipboard-read", "clipboard-write"],
            base_url=live_platform.url,
            device_scale_factor=1,
            is_mobile=width < 500,
            has_touch=width < 500,
        )
        contexts.append(context)
        context.add_cookies([browser_session_cookie(user)])
        page = context.new_page()
        page.console_errors = []
        page.on("console", lambda message: page.console_errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: page.console_errors.append(str(error)))
        track_requests(page)
        return page

    yield open_page
    for context in contexts:
        context.close()


# How long without a request in flight makes a page's network quiet (Playwright's "networkidle"
# waits 500 ms, after every page of the tests that visit many).
QUIET_MILLISECONDS = 150


def track_requests(page) -> None:
    """Counts the page's requests in flight, for wait_for_quiet_network (before it navigates)."""
    page.requests_in_flight = set()
    page.last_request_event = time.monotonic()

    def started(request):
        page.requests_in_flight.add(request)
        page.last_request_event = time.monotonic()

    def ended(request):
        page.requests_in_flight.discard(request)
        page.last_request_event = time.monotonic()

    page.on("request", started)
    page.on("requestfinished", ended)
    page.on("requestfailed", ended)


def wait_for_quiet_network(page, timeout: float = 30.0) -> None:
    """Waits until the page has had no request in flight for QUIET_MILLISECONDS (Playwright's
    networkidle with a shorter window): what its scripts fetched after loading has come back."""
    page.wait_for_load_state("load")
    deadline = time.monotonic() + timeout
    while page.requests_in_flight or time.monotonic() - page.last_request_event < QUIET_MILLISECONDS / 1000:
        assert time.monotonic() < deadline, f"requests still in flight after {timeout} s: {page.requests_in_flight}"
        page.wait_for_timeout(25)  # Playwright delivers the page's events while it waits


def put_in_state(project, status, *, public_url="", connection_url="", error=""):
    """Sets a project's resources as the reconcilers would have (for pages that show them)."""
    Sandbox.objects.filter(project=project).update(status=status, public_url=public_url, last_error=error)
    Database.objects.filter(project=project).update(status=status)
    if connection_url:
        database = Database.objects.get(project=project)
        database.connection_url = connection_url
        database.save(update_fields=["connection_url"])
    services.refresh_project_status(project.pk)
    project.refresh_from_db()
    return project


@pytest.fixture
def set_project_state():
    return put_in_state


@pytest.fixture
def showcase(user, other_user):
    """A user with projects in several states and some variables, for the page tests."""
    blog = services.do_create_project(user, name="My Blog", description="A blog about sailing boats, with comments.")
    services.do_set_variables(
        blog,
        [
            {"key": "NODE_ENV", "value": "production"},
            {"key": "LOG_LEVEL", "value": "debug"},
            {"key": "OPENAI_API_KEY", "value": "sk-live-123", "category": "secret"},
            {"key": "GITHUB_CLIENT_ID", "value": "Iv1.8a61f9b3a7aba766", "category": "auth"},
            {"key": "NEXTAUTH_SECRET", "value": "c2VjcmV0", "category": "auth", "is_secret": True},
            {"key": "STRIPE_SECRET_KEY", "value": "sk_test_1", "category": "payment", "is_secret": True},
        ],
    )
    put_in_state(
        blog,
        ResourceStatus.RUNNING,
        public_url="http://127.0.0.1:41000/",
        connection_url="postgresql://myblog_owner:Xk7pQ2mZ9vLr4tWs@127.0.0.1:5432/myblog_db",
    )
    shop = services.do_create_project(user, name="Flower Shop", description="Orders and deliveries")
    put_in_state(shop, ResourceStatus.ERROR, error="The sandbox's terminal did not start: ttyd exited with code 1.")
    notes = services.do_create_project(user, name="Team Notes")
    put_in_state(notes, ResourceStatus.STOPPED)
    services.do_create_project(user, name="Recipe Book", description="Family recipes")
    services.do_create_project(other_user, name="Not Yours")
    return {"blog": blog, "shop": shop, "notes": notes}
