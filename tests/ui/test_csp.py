"""Issue 14, finding 11: a strict Content-Security-Policy on every page, and every page works under it.

Each page is opened in headless Chromium against the live platform; the browser reports any
violation (a ``securitypolicyviolation`` event, a console error) and the test requires none. The
terminal with a running shell (xterm.js) is checked in tests/terminal/test_browser.py.
"""

import pytest

from fullstackagent.status import ResourceStatus
from projects.models import Project
from tests.ui.conftest import track_requests, wait_for_quiet_network

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`);
});
"""

EXPECTED_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",
    "font-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def expected_directives(port=None) -> dict:
    """The policy, whose frame-src names the previews' origins (on the server's port, when the
    server was given its address)."""
    return {**EXPECTED_DIRECTIVES, "frame-src": "'self' http://*.preview.localhost" + (f":{port}" if port else "")}


def directives(header: str) -> dict:
    return {name: value for name, _, value in (part.strip().partition(" ") for part in header.split(";") if part.strip())}


def visit(page, path: str, ready: str = "main, body") -> list[str]:
    """Opens ``path``, waits for ``ready``, and returns the violations and console errors seen."""
    page.console_errors.clear()
    failed = []
    page.on("response", lambda answer: failed.append(answer.url) if answer.status >= 400 else None)
    response = page.goto(path)
    assert response.status == 200, f"{path}: {response.status}"
    port = response.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    assert directives(response.headers["content-security-policy"]) == expected_directives(port), path
    page.wait_for_selector(ready)
    wait_for_quiet_network(page)
    return page.evaluate("() => window.__cspViolations") + page.console_errors + failed


@pytest.fixture
def csp_page(signed_in_page):
    def open_page(user):
        page = signed_in_page(user)
        page.context.add_init_script(RECORD_VIOLATIONS)
        return page

    return open_page


def test_every_page_of_a_user_works_under_the_policy(csp_page, user, showcase):
    page = csp_page(user)
    blog, stopped = showcase["blog"], showcase["notes"]
    paths = [
        ("/", "#project-cards"),
        ("/?q=blog&created_from=2020-01-01", "#project-cards"),
        (f"/projects/{blog.pk}/database/", "main"),
        (f"/projects/{blog.pk}/environment/", "main"),
        (f"/projects/{blog.pk}/secrets/", "main"),
        (f"/projects/{blog.pk}/auth/", "main"),
        (f"/projects/{blog.pk}/payment/", "main"),
        (f"/projects/{stopped.pk}/terminal/", "#terminal-overlay"),
        ("/settings/?tab=agent", "main"),
        ("/settings/?tab=kubernetes", "main"),
        ("/settings/?tab=anthropic", "main"),
        ("/settings/?tab=tokens", "main"),
        ("/identities/", "main"),
        ("/api/projects", "body"),  # DRF's browsable API
        ("/api/docs/", ".swagger-ui .opblock"),  # Swagger UI rendered the operations
    ]

    found = {path: visit(page, path, ready) for path, ready in paths}
    # htmx under the policy: a stop is an hx-post that swaps the cards in and shows a toast from
    # HX-Trigger; a delete asks in the page's own dialog first (hx-confirm).
    visit(page, "/", "#project-cards")
    page.locator(f"#stop-{blog.pk}").click()
    page.get_by_text("Project My Blog is stopping.").wait_for()
    page.wait_for_selector(f"#project-{blog.pk}[data-status=STOPPING]")
    page.locator(f"#delete-{blog.pk}").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete project").click()
    page.wait_for_selector(f"#project-{blog.pk}[data-status=TERMINATING]")

    assert found == {path: [] for path, _ in paths}
    assert Project.objects.get(pk=blog.pk).status == ResourceStatus.TERMINATING
    assert page.evaluate("() => window.__cspViolations") == []
    assert page.console_errors == []


def test_the_sign_in_pages_and_the_admin_work_under_the_policy(chromium, live_platform, csp_page, make_user, showcase):
    context = chromium.new_context(base_url=live_platform.url)
    context.add_init_script(RECORD_VIOLATIONS)
    anonymous = context.new_page()
    anonymous.console_errors = []
    anonymous.on("console", lambda message: anonymous.console_errors.append(message.text) if message.type == "error" else None)
    track_requests(anonymous)
    try:
        sign_in_paths = ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]
        sign_in = {path: visit(anonymous, path, "form") for path in sign_in_paths}
    finally:
        context.close()
    operator = make_user("olga")
    operator.is_staff = operator.is_superuser = True
    operator.save()
    page = csp_page(operator)
    admin_paths = [
        ("/admin/", "#content"),
        ("/admin/projects/project/", "#changelist"),
        (f"/admin/projects/project/{showcase['blog'].pk}/change/", "#content-main form"),
        ("/admin/auth/user/add/", "#content-main form"),
    ]

    admin = {path: visit(page, path, ready) for path, ready in admin_paths}

    assert sign_in == {path: [] for path in sign_in_paths}
    assert admin == {path: [] for path, _ in admin_paths}


def test_every_response_carries_the_policy_even_errors(client, db):
    for response in (client.get("/accounts/login/"), client.get("/healthz"), client.get("/no-such-page/")):
        assert directives(response["Content-Security-Policy"]) == expected_directives()
