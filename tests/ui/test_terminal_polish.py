"""Rough edges of the terminal and settings pages, each seen in a browser or on the page."""

import pytest

from fullstackagent.status import ProjectStatus, ResourceStatus
from fullstackagent.testing.processes import wait_for
from projects import services
from projects.models import Project
from sandboxes.backends import get_sandbox_backend
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec
from tests.ui.conftest import put_in_state

TERMINAL = "#terminal-panes .terminal-pane.active"
TERMINAL_ROWS = TERMINAL + " .xterm-rows"


def _screen_matches(page, pattern, timeout_ms=30000):
    page.wait_for_function(
        "([selector, pattern]) => { const rows = document.querySelector(selector);"
        " return rows && new RegExp(pattern, 'm').test(rows.innerText.replace(/\\u00a0/g, ' ')); }",
        arg=[TERMINAL_ROWS, pattern],
        timeout=timeout_ms,
    )


@pytest.mark.browser
def test_links_in_the_terminal_are_clickable_and_paste_gives_the_focus_back(celery_worker, signed_in_page, user):
    project = services.do_create_project(user, name="Polish")
    wait_for(lambda: Project.objects.get(pk=project.pk).status == ProjectStatus.RUNNING, timeout=60, message="running")
    page = signed_in_page(user)
    try:
        page.goto(f"/projects/{project.pk}/terminal/")
        _screen_matches(page, r"[$#]\s*$", timeout_ms=60000)
        page.click(TERMINAL + " .xterm-screen")
        page.keyboard.type("clear; echo https://example.com/docs")
        page.keyboard.press("Enter")
        _screen_matches(page, r"^https://example\.com/docs\s*$")

        # Hovering the printed URL makes it a link (the web-links addon): xterm.js shows a pointer.
        row = page.locator(TERMINAL_ROWS + " > div", has_text="https://example.com/docs").last
        box = row.bounding_box()
        page.mouse.move(box["x"] + 20, box["y"] + box["height"] / 2)
        page.wait_for_selector(TERMINAL + " .xterm-screen.xterm-cursor-pointer", timeout=5000)

        # Paste, then Enter: the Enter reaches the shell, not the Paste button again.
        page.evaluate("() => navigator.clipboard.writeText('echo pasted-$((20+1))')")
        page.click("#terminal-paste")
        # The button reads the clipboard (a promise), pastes, then hands the focus back.
        page.wait_for_function("() => document.activeElement.classList.contains('xterm-helper-textarea')", timeout=5000)
        page.keyboard.press("Enter")
        _screen_matches(page, r"^pasted-21\s*$")
        assert page.inner_text(TERMINAL_ROWS).count("pasted-21") == 1  # pasted once, run once
        assert page.console_errors == []
    finally:
        get_sandbox_backend().delete(build_spec(Sandbox.objects.get(project=project)))


def test_a_stopped_projects_terminal_page_offers_start(user_client, user):
    project = put_in_state(services.do_create_project(user, name="Sleeper"), ResourceStatus.STOPPED)

    page = user_client.get(f"/projects/{project.pk}/terminal/").content.decode()
    response = user_client.post(f"/projects/{project.pk}/start/", {"next": f"/projects/{project.pk}/terminal/"})

    assert 'id="terminal-start"' in page
    assert f'action="/projects/{project.pk}/start/"' in page
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.pk}/terminal/"
    assert Project.objects.get(pk=project.pk).status == ProjectStatus.STARTING


def test_a_running_projects_terminal_page_offers_no_start(user_client, user):
    project = put_in_state(services.do_create_project(user, name="Awake"), ResourceStatus.RUNNING)

    assert 'id="terminal-start"' not in user_client.get(f"/projects/{project.pk}/terminal/").content.decode()


def test_the_kubernetes_tab_says_a_kubeconfig_is_unused_with_the_local_backend(user_client, settings):
    settings.SANDBOX_BACKEND = "local"
    local = user_client.get("/settings/?tab=kubernetes").content.decode()
    settings.SANDBOX_BACKEND = "kubernetes"
    kubernetes = user_client.get("/settings/?tab=kubernetes").content.decode()

    assert 'id="kubeconfig-unused"' in local
    assert 'id="kubeconfig-unused"' not in kubernetes


def test_the_secrets_page_does_not_promise_what_reveal_breaks(user_client, user):
    project = services.do_create_project(user, name="Secretive")

    page = user_client.get(f"/projects/{project.pk}/secrets/").content.decode()

    assert "never shown again" not in page
    assert "a value is shown only when you click Reveal" in page


@pytest.mark.browser
def test_the_terminal_font_is_a_loaded_web_font_and_the_upload_bar_leaves_its_size(signed_in_page, user):
    project = put_in_state(services.do_create_project(user, name="Fonts"), ResourceStatus.STOPPED)
    page = signed_in_page(user)
    page.goto(f"/projects/{project.pk}/terminal/")
    page.wait_for_selector(TERMINAL + " .xterm-screen")

    # Loaded from this site (document.fonts.check alone is true for a family nobody declared).
    assert page.evaluate(
        """() => [...document.fonts].some(face => face.family.replace(/["']/g, '') === 'JetBrains Mono'
                                                   && face.status === 'loaded')"""
    )
    assert page.evaluate("() => getComputedStyle(document.querySelector('.xterm-rows')).fontFamily").startswith('"JetBrains Mono"')
    # Rows are taller than the font (lineHeight 1.2), so nothing under the baseline is clipped.
    row_height = page.evaluate("() => document.querySelector('.xterm-rows > div').getBoundingClientRect().height")
    assert row_height >= 14 * 1.2 - 0.5
    before = page.evaluate("() => document.getElementById('terminal-panes').getBoundingClientRect().height")
    page.evaluate("() => { document.getElementById('terminal-upload').hidden = false; }")
    after = page.evaluate("() => document.getElementById('terminal-panes').getBoundingClientRect().height")
    assert after == before
    assert page.console_errors == []


@pytest.mark.browser
def test_toasts_do_not_pile_up_and_success_messages_go_away(signed_in_page, user):
    page = signed_in_page(user)
    # The page's timers run on Playwright's clock, moved on by the test: the 6 s a message stays
    # (static/js/app.js, TOAST_MS) are checked without being waited for.
    page.clock.install()
    page.goto("/")
    for number in range(5):
        page.evaluate("(n) => window.fsa.toast('Project ' + n + ' is being created.', 'success')", number)

    assert page.locator("#toasts .toast").count() == 3
    assert page.locator("#toasts .toast").first.inner_text().startswith("Project 2 is being created.")
    page.clock.run_for(5000)
    assert page.locator("#toasts .toast").count() == 3
    page.clock.run_for(1500)
    page.wait_for_selector("#toasts .toast", state="detached", timeout=2000)

    # A page's own success message (a form post without JavaScript) goes away as well.
    page.goto("/")
    page.evaluate(
        """() => { const form = document.createElement('form'); form.method = 'post'; form.action = '/';
                   const csrf = document.querySelector('[name=csrfmiddlewaretoken]').cloneNode();
                   const name = document.createElement('input'); name.name = 'name'; name.value = 'Form Made';
                   form.append(csrf, name); document.body.append(form); form.submit(); }"""
    )
    page.wait_for_selector(".messages .message-success")
    page.clock.run_for(5000)
    assert page.locator(".messages .message-success").count() == 1
    page.clock.run_for(1500)
    page.wait_for_selector(".messages .message-success", state="detached", timeout=2000)
    assert Project.objects.filter(user=user, name="Form Made").exists()


@pytest.mark.browser
def test_the_cursor_is_steady_for_someone_who_asked_for_less_motion(chromium, live_platform, browser_session_cookie, user):
    project = services.do_create_project(user, name="Steady")
    blinking = {}
    for motion in ("no-preference", "reduce"):
        context = chromium.new_context(base_url=live_platform.url, reduced_motion=motion)
        context.add_cookies([browser_session_cookie(user)])
        page = context.new_page()
        page.goto(f"/projects/{project.pk}/terminal/")
        page.focus(TERMINAL + " .xterm-helper-textarea")  # xterm.js blinks the focused terminal's cursor
        cursor = page.wait_for_selector(TERMINAL_ROWS + " .xterm-cursor")
        blinking[motion] = "xterm-cursor-blink" in cursor.get_attribute("class").split()
        context.close()

    assert blinking == {"no-preference": True, "reduce": False}
