"""The Database page in headless Chromium: the password is masked until revealed, and Copy puts
the real password on the clipboard."""

import pytest

from projects import services

PASSWORD = "Xk7pQ2mZ9vLr4tWs"
URL = f"postgresql://myblog_owner:{PASSWORD}@127.0.0.1:5432/myblog_db"


@pytest.mark.browser
def test_reveal_and_copy_the_database_password(signed_in_page, user, set_project_state):
    project = set_project_state(services.do_create_project(user, name="My Blog"), "RUNNING", connection_url=URL)
    page = signed_in_page(user)
    page.goto(f"/projects/{project.pk}/database/")

    password = page.locator("#db-password")
    assert password.inner_text() == "••••••••"
    assert PASSWORD not in page.content()

    page.get_by_role("button", name="Copy password").click()
    page.get_by_text("Password copied to the clipboard.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == PASSWORD
    assert password.inner_text() == "••••••••"

    page.get_by_role("button", name="Reveal").click()
    page.wait_for_function(f"document.querySelector('#db-password').textContent === '{PASSWORD}'")
    assert page.locator("#db-url").inner_text() == URL
    assert page.get_by_role("button", name="Hide").get_attribute("aria-pressed") == "true"

    page.get_by_role("button", name="Hide").click()
    assert password.inner_text() == "••••••••"
    assert page.console_errors == []


@pytest.mark.browser
def test_another_users_database_page_is_not_found(signed_in_page, user, other_user, set_project_state):
    theirs = set_project_state(services.do_create_project(other_user, name="Theirs"), "RUNNING", connection_url=URL)
    page = signed_in_page(user)

    response = page.goto(f"/projects/{theirs.pk}/database/")

    assert response.status == 404
    assert PASSWORD not in page.content()
