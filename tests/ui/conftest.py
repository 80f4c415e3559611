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
        return page

    yield open_page
    for context in contexts:
        context.close()


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
