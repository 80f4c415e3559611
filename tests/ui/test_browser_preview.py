"""The preview end to end in headless Chromium, with a real (bubblewrap) sandbox: the owner starts an
app in the terminal, sees it in the preview pane, edits a file and sees the change arrive through
the app's hot-reload websocket; the app's page cannot read or use the platform's session; another
user and an anonymous browser are refused; a share link works until it is revoked."""

import os
import re

import pytest

from fullstackagent.status import ProjectStatus
from fullstackagent.testing.processes import wait_for
from projects import services
from projects.models import Project
from sandboxes.backends import get_sandbox_backend
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec

TERMINAL = "#terminal-panes .terminal-pane.active"
TERMINAL_ROWS = TERMINAL + " .xterm-rows"

# A dev server in the manner of Next.js's: the page shows message.txt, and a websocket tells the
# page when the file changed, which then shows the new text without reloading. Node's standard
# library only: the handshake and the (unmasked, short) server frames by hand.
HOT_SERVER = r"""
const http = require("http"), fs = require("fs"), crypto = require("crypto"), path = require("path");
const file = path.join(__dirname, "message.txt");
const page = `<!doctype html><title>Hot app</title><h1 id="message"></h1><script>
const show = () => fetch("/message").then((r) => r.text()).then((t) => { document.getElementById("message").textContent = t; });
show();
const socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/hmr");
socket.onmessage = show;
</script>`;
const sockets = new Set();
const server = http.createServer((request, response) => {
  if (request.url === "/message") {
    response.writeHead(200, { "content-type": "text/plain" });
    response.end(fs.readFileSync(file, "utf8").trim());
    return;
  }
  response.writeHead(200, { "content-type": "text/html" });
  response.end(page);
});
server.on("upgrade", (request, socket) => {
  const accept = crypto.createHash("sha1").update(request.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n");
  sockets.add(socket);
  socket.on("close", () => sockets.delete(socket));
  socket.on("error", () => sockets.delete(socket));
});
fs.watchFile(file, { interval: 100 }, () => {
  for (const socket of sockets) socket.write(Buffer.from([0x81, 7, ...Buffer.from("changed")]));
});
server.listen(Number(process.env.PORT), () => console.log("hot server on " + process.env.PORT));
"""


def _screen_matches(page, pattern, timeout_ms=30000):
    page.wait_for_function(
        "([selector, pattern]) => { const rows = document.querySelector(selector);"
        " return rows && new RegExp(pattern, 'm').test(rows.innerText.replace(/\\u00a0/g, ' ')); }",
        arg=[TERMINAL_ROWS, pattern],
        timeout=timeout_ms,
    )


def _type(page, line):
    page.click(TERMINAL + " .xterm-screen")
    page.keyboard.type(line)
    page.keyboard.press("Enter")


def _preview_frame(page):
    for _ in range(150):
        frame = next((f for f in page.frames if ".preview.localhost" in f.url and "/__preview/" not in f.url), None)
        if frame is not None:
            return frame
        page.wait_for_timeout(200)  # Playwright's events (frame navigations) are handled while it waits
    pytest.fail(f"no preview frame; frames: {[f.url for f in page.frames]}")


@pytest.mark.browser
def test_the_owner_previews_an_app_started_in_the_terminal_with_hot_reload(
    celery_worker, signed_in_page, chromium, live_platform, user, other_user
):
    project = services.do_create_project(user, name="Hot App")
    wait_for(lambda: Project.objects.get(pk=project.pk).status == ProjectStatus.RUNNING, timeout=60, message="running")
    sandbox = Sandbox.objects.get(project=project)
    workspace = get_sandbox_backend().workspace(build_spec(sandbox))
    owner_uid, owner_gid = workspace.stat().st_uid, workspace.stat().st_gid
    for name, text in (("hot.js", HOT_SERVER), ("message.txt", "first version\n")):
        (workspace / name).write_text(text)
        os.chown(workspace / name, owner_uid, owner_gid)
    page = signed_in_page(user)
    try:
        page.goto(f"/projects/{project.pk}/terminal/")
        _screen_matches(page, r"[$#]\s*$", timeout_ms=60000)
        _type(page, "node hot.js &")
        _screen_matches(page, r"hot server on \d+")

        page.click("#preview-show")
        frame = _preview_frame(page)
        frame.wait_for_function("() => document.getElementById('message')?.textContent === 'first version'", timeout=30000)
        frame.evaluate("() => { window.loadedOnce = true; }")

        _type(page, "echo 'second version' > message.txt")

        # The new text arrives through the app's websocket, on the same page (no reload).
        frame.wait_for_function("() => document.getElementById('message').textContent === 'second version'", timeout=30000)
        assert frame.evaluate("() => window.loadedOnce") is True
        # The app's page, on its own origin, sees no cookie (the preview's is HttpOnly; the
        # platform's never comes here) and cannot read the platform's API as the user.
        assert frame.evaluate("() => document.cookie") == ""
        attempt = frame.evaluate(
            "async (url) => { try { const r = await fetch(url, { credentials: 'include' }); return 'read ' + r.status; }"
            " catch (error) { return 'blocked'; } }",
            f"{live_platform.url}/api/user/config",
        )
        assert attempt == "blocked"
        page.wait_for_timeout(200)
        # The browser reports that refusal (and its failed load) as console errors: expected ones.
        expected_errors = len(page.console_errors)
        assert expected_errors and all("CORS" in e or "ERR_FAILED" in e for e in page.console_errors), page.console_errors
        preview_origin = re.match(r"^(http://p\d+\.preview\.localhost:\d+)/", frame.url).group(1)

        # Someone else: an anonymous browser, and another signed-in user asking for a hand-off.
        anonymous = chromium.new_context().new_page()
        response = anonymous.goto(f"{preview_origin}/")
        assert response.status == 401 and "This preview is private" in anonymous.content()
        anonymous.context.close()
        stranger = signed_in_page(other_user)
        assert stranger.goto(f"/projects/{project.pk}/preview/").status == 404
        assert "first version" not in stranger.content() and "second version" not in stranger.content()

        # A share link: made from the pane, opened by anyone who has it, until revoked.
        page.click("#preview-share")
        message = page.locator(".messages, [role=status], .toast").filter(has_text="Share link").first.inner_text()
        link = re.search(r"(http://p\d+\.preview\.localhost:\d+/__preview/share/\S+)", message).group(1)
        visitor = chromium.new_context().new_page()
        visitor.goto(link)
        visitor.wait_for_function("() => document.getElementById('message')?.textContent === 'second version'", timeout=30000)
        page.click("[id^=revoke-share-]")
        page.wait_for_selector("[id^=revoke-share-]", state="detached")
        for _ in range(20):
            if visitor.goto(f"{preview_origin}/").status == 401:
                break
            visitor.wait_for_timeout(500)  # the proxy caches a grant's check for 2 s
        assert "This preview is private" in visitor.content()
        visitor.context.close()
        assert page.console_errors[expected_errors:] == []
    finally:
        get_sandbox_backend().delete(build_spec(Sandbox.objects.get(project=project)))
