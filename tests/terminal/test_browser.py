"""End to end in headless Chromium against the live platform (web server + a Celery worker): sign up,
create a project, use its terminal, reload, upload; and the status overlay while it is stopped.
Every response body and websocket frame the browser saw is searched for the token."""

import base64
import re

import pytest

from fullstackagent.status import ResourceStatus
from fullstackagent.testing.processes import wait_for
from projects import services
from projects.models import Environment, Project
from sandboxes.environment import TERMINAL_TOKEN_KEY
from sandboxes.models import Sandbox
from tests.ui.test_csp import RECORD_VIOLATIONS

PASSWORD = "a-long-browser-password-42"
TERMINAL = "#terminal-panes .terminal-pane.active"
TERMINAL_ROWS = TERMINAL + " .xterm-rows"


def screen(page) -> str:
    return page.inner_text(TERMINAL_ROWS).replace("\xa0", " ")


def wait_for_screen(page, pattern: str, timeout_ms: int = 20000) -> str:
    """Waits until a line of the visible terminal matches ``pattern`` (a multi-line regex)."""
    page.wait_for_function(
        "([selector, pattern]) => { const rows = document.querySelector(selector);"
        " return rows && new RegExp(pattern, 'm').test(rows.innerText.replace(/\\u00a0/g, ' ')); }",
        arg=[TERMINAL_ROWS, pattern],
        timeout=timeout_ms,
    )
    return screen(page)


def type_command(page, command: str) -> None:
    page.click(TERMINAL + " .xterm-screen")
    page.keyboard.type(command)
    page.keyboard.press("Enter")


def drop_file(page, name: str, text: str) -> None:
    """What a drag from the desktop does, built in the page (Playwright cannot drag OS files)."""
    page.evaluate(
        """([name, text]) => {
            const data = new DataTransfer();
            data.items.add(new File([text], name, {type: "text/plain"}));
            const panes = document.getElementById("terminal-panes");
            for (const type of ["dragover", "drop"]) {
                panes.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
            }
        }""",
        [name, text],
    )


@pytest.mark.browser
def test_terminal_end_to_end_without_the_token_ever_reaching_the_browser(
    live_platform, celery_worker, chromium, sandboxes_cleanup, tmp_path
):
    bodies, frames, request_urls = [], [], []

    def record_response(response):
        try:
            bodies.append((response.url, response.body()))
        except Exception:  # redirects and aborted loads have no body to record
            bodies.append((response.url, b""))

    def record_websocket(websocket):
        request_urls.append(websocket.url)
        websocket.on("framereceived", lambda payload: frames.append(payload))
        websocket.on("framesent", lambda payload: frames.append(payload))

    context = chromium.new_context(base_url=live_platform.url, viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_platform.url)
    context.add_init_script(RECORD_VIOLATIONS)  # xterm.js under the Content-Security-Policy (issue 14)
    page = context.new_page()
    page.on("response", record_response)
    page.on("request", lambda request: request_urls.append(request.url))
    page.on("websocket", record_websocket)
    page.on("console", lambda message: print("console:", message.text))
    page.on("pageerror", lambda error: print("pageerror:", error))
    try:
        # Sign up, create a project.
        page.goto("/accounts/signup/")
        page.fill("#id_username", "browser-user")
        page.fill("#id_password1", PASSWORD)
        page.fill("#id_password2", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/$"))
        page.click("#new-project-button")
        page.fill("#new-project-name", "Browser App")
        page.click("#new-project-form button[type=submit]")
        project = wait_for(
            lambda: Project.objects.filter(name="Browser App", user__username="browser-user").first(),
            message="the project to be created",
        )

        # The terminal page shows the sandbox's status until it runs, then connects by itself.
        page.goto(f"/projects/{project.pk}/terminal/")
        wait_for_screen(page, r"[$#]\s*$", timeout_ms=60000)
        assert page.is_hidden("#terminal-overlay")
        type_command(page, "FSA_MARK=$((5*5)); echo $((6*7))")
        wait_for_screen(page, r"^42\s*$")

        # Reload: the same tmux session comes back, with the screen and the shell's variables.
        page.reload()
        wait_for_screen(page, r"^42\s*$")
        type_command(page, "echo mark-$FSA_MARK")
        wait_for_screen(page, r"^mark-25\s*$")

        # Drop a file onto the terminal: it lands in the shell's directory, its path is copied.
        drop_file(page, "greeting.txt", "dropped through the platform\n")
        page.wait_for_function("() => document.getElementById('terminal-upload').dataset.path")
        uploaded = page.get_attribute("#terminal-upload", "data-path")
        assert uploaded == "~/greeting.txt"  # as the shell names it, not the platform's path (issue 14)
        assert page.evaluate("() => navigator.clipboard.readText()") == uploaded
        type_command(page, "cat greeting.txt")
        wait_for_screen(page, r"^dropped through the platform\s*$")

        # Paste from the clipboard with Ctrl+Shift+V (plain Ctrl+V stays the browser's own paste).
        page.evaluate("() => navigator.clipboard.writeText('echo pasted-$((1+1))')")
        page.click(TERMINAL + " .xterm-screen")
        page.keyboard.press("Control+Shift+V")
        page.keyboard.press("Enter")
        wait_for_screen(page, r"^pasted-2\s*$")
        assert page.evaluate("() => window.__cspViolations") == []
    except Exception:
        page.screenshot(path=tmp_path / "failure.png")  # with the printed console, explains failures
        raise
    finally:
        context.close()

    token = Environment.objects.get(project=project, key=TERMINAL_TOKEN_KEY).value
    credential = base64.b64encode(f"agent:{token}".encode()).decode()
    assert len(bodies) > 10 and len(frames) > 10
    assert any(url.endswith(f"/projects/{project.pk}/terminal/") and b"terminal-app" in body for url, body in bodies)
    for secret in (token, credential):
        assert not [url for url, body in bodies if secret.encode() in body]
        assert not [frame for frame in frames if secret in (frame if isinstance(frame, str) else frame.decode("latin-1"))]
        assert not [url for url in request_urls if secret in url]
    assert token not in live_platform.output()


@pytest.mark.browser
def test_overlay_shows_the_sandbox_status_while_stopped_and_the_terminal_comes_back(
    live_platform, celery_worker, chromium, browser_session_cookie, sandboxes_cleanup, user
):
    project = services.do_create_project(user, name="Overlay App")
    wait_for(lambda: Sandbox.objects.get(project=project).status == ResourceStatus.RUNNING, timeout=30, message="RUNNING")
    context = chromium.new_context(base_url=live_platform.url, viewport={"width": 1280, "height": 800})
    context.add_cookies([browser_session_cookie(user)])
    page = context.new_page()
    try:
        page.goto(f"/projects/{project.pk}/terminal/")
        wait_for_screen(page, r"[$#]\s*$", timeout_ms=30000)
        assert page.is_hidden("#terminal-overlay")

        services.do_stop_project(project)
        # The shell goes away (4502), the reconnect is refused (4409), the page polls the status.
        page.wait_for_function(
            "() => !document.getElementById('terminal-overlay').hidden &&"
            " document.getElementById('terminal-overlay-title').textContent === 'Sandbox: STOPPED'",
            timeout=30000,
        )

        services.do_start_project(project)
        page.wait_for_selector("#terminal-overlay", state="hidden", timeout=30000)
        wait_for_screen(page, r"[$#]\s*$", timeout_ms=30000)
        type_command(page, "echo back-$((20+22))")
        wait_for_screen(page, r"^back-42\s*$")
    finally:
        context.close()
