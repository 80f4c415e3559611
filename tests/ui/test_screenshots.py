"""Every page at desktop (1280) and phone (390) width: no horizontal scrolling, no script errors.

The screenshots land in screenshots/ (git-ignored) for a person to look at.
"""

from pathlib import Path

import pytest

from tests.ui.conftest import wait_for_quiet_network

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
WIDTHS = {"desktop": 1280, "phone": 390}


def _pages(showcase):
    blog = showcase["blog"].pk
    return {
        "projects": "/",
        "database": f"/projects/{blog}/database/",
        "environment": f"/projects/{blog}/environment/",
        "secrets": f"/projects/{blog}/secrets/",
        "auth": f"/projects/{blog}/auth/",
        "payment": f"/projects/{blog}/payment/",
        "error-project": f"/projects/{showcase['shop'].pk}/database/",
        "settings-agent": "/settings/?tab=agent",
        "settings-kubernetes": "/settings/?tab=kubernetes&reason=kubeconfig-missing",
        "settings-anthropic": "/settings/?tab=anthropic",
        "settings-tokens": "/settings/?tab=tokens",
    }


def _fits(page, width) -> bool:
    # Compared with the width asked for: a phone's visual viewport grows to fit what overflows.
    return page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.browser
@pytest.mark.parametrize("size", list(WIDTHS))
def test_every_page_fits_the_screen_without_script_errors(signed_in_page, showcase, user, size):
    SCREENSHOTS.mkdir(exist_ok=True)
    page = signed_in_page(user, width=WIDTHS[size])
    overflowing = []
    for name, path in _pages(showcase).items():
        page.goto(path)
        wait_for_quiet_network(page)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{size}.png"), full_page=True)
        if not _fits(page, WIDTHS[size]):
            overflowing.append(name)

    errors = list(page.console_errors)

    # The terminal page is the terminal's own (projects.terminal_views; its sandbox here is not real, so it
    # keeps reconnecting): photographed for review, not judged by this test.
    page.goto(f"/projects/{showcase['blog'].pk}/terminal/")
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / f"terminal-{size}.png"), full_page=True)

    # The dialogs, open.
    page.goto("/")
    page.get_by_role("button", name="New project").first.click()
    page.get_by_label("Name").fill("9 lives")
    page.screenshot(path=str(SCREENSHOTS / f"new-project-dialog-{size}.png"))
    page.keyboard.press("Escape")
    page.locator(f"#delete-{showcase['notes'].pk}").click()
    page.screenshot(path=str(SCREENSHOTS / f"confirm-delete-{size}.png"))
    page.keyboard.press("Escape")

    assert overflowing == []
    assert errors == []


@pytest.mark.browser
def test_sign_in_page_fits_a_phone(chromium, live_platform):
    context = chromium.new_context(viewport={"width": 390, "height": 844}, base_url=live_platform.url)
    page = context.new_page()
    page.goto("/accounts/login/")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "sign-in-phone.png"), full_page=True)

    assert _fits(page, 390)
    context.close()
