"""The Sealos sign-in page in headless Chromium, framed by a stand-in Sealos desktop that answers the
page's session request over postMessage as the real desktop does."""

import time
from http.server import BaseHTTPRequestHandler

import jwt
import pytest
from django.contrib.auth import get_user_model

from fullstackagent.testing.http import LocalHTTPServer
from identities.models import IdentityProvider, UserIdentity

SECRET = "sealos-jwt-secret-for-tests-0123456789"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: sealos
  cluster: {server: "https://sealos.example:6443"}
contexts:
- name: sealos
  context: {cluster: sealos, user: u-carol, namespace: ns-carol}
current-context: sealos
users:
- name: u-carol
  user: {token: kube-token-of-carol}
"""

pytestmark = pytest.mark.browser


def desktop_page(frame_url: str, token: str) -> bytes:
    """The stand-in desktop: frames our page and answers `user.getInfo` with the session."""
    return f"""<!doctype html><title>Sealos desktop</title>
<iframe id="app" src="{frame_url}" width="800" height="600"></iframe>
<script>
window.addEventListener("message", function (event) {{
  var request = event.data || {{}};
  if (request.apiName !== "user.getInfo") return;
  event.source.postMessage({{
    messageId: request.messageId, success: true,
    data: {{token: {token!r}, kubeconfig: {KUBECONFIG!r}, user: {{id: "u-carol", name: "carol"}}}}
  }}, event.origin);
}});
</script>""".encode()


class Desktop(LocalHTTPServer):
    """Serves the stand-in desktop page."""

    thread_name = "fake-sealos-desktop"

    def __init__(self, page: bytes):
        self.page = page
        super().__init__()

    def _handler_class(self):
        body = self.page

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    @property
    def origin(self):
        # Same site as the live server (localhost), as a Sealos desktop and its apps share a
        # domain: the session cookie (SameSite=Lax) is then sent inside the frame.
        return self.url.replace("127.0.0.1", "localhost")


def session_token(**changes):
    now = int(time.time())
    claims = {
        "workspaceUid": "ws", "workspaceId": "ns-carol", "regionUid": "r", "userCrUid": "cr", "userCrName": "carol-cr",
        "userId": "u-carol", "userUid": "uid-carol", "iat": now - 5, "exp": now + 600,
    }
    claims.update(changes)
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture
def sealos_settings(settings):
    settings.ENABLE_SEALOS_AUTH = True
    settings.SEALOS_JWT_SECRET = SECRET
    settings.AIPROXY_ENDPOINT = ""
    return settings


@pytest.mark.django_db(transaction=True)
def test_opened_inside_sealos_the_page_signs_the_user_in(chromium, live_server, sealos_settings):
    frame_url = f"{live_server.url}/identities/sealos/"
    with Desktop(desktop_page(frame_url, session_token())) as desktop:
        sealos_settings.SEALOS_DESKTOP_ORIGINS = [desktop.origin]
        page = chromium.new_page()
        page.goto(desktop.origin + "/")
        # After signing in the page moves on to the projects list, signed in as the Sealos user.
        who = page.frame_locator("#app").locator(".who").inner_text(timeout=15000)
        app_url = next(frame.url for frame in page.frames if frame.url.startswith(live_server.url))
        page.close()

    assert who == "u-carol"
    assert app_url == f"{live_server.url}/"

    user = get_user_model().objects.get()
    assert user.username == "u-carol"
    assert UserIdentity.objects.get().provider == IdentityProvider.SEALOS


@pytest.mark.django_db(transaction=True)
def test_a_framing_page_that_is_not_the_sealos_desktop_gets_no_sign_in(chromium, live_server, sealos_settings):
    """Another site framing the page and answering with its own valid session must not sign the
    visitor in: the browser refuses the frame (frame-ancestors) and the script ignores the answer."""
    frame_url = f"{live_server.url}/identities/sealos/"
    with Desktop(desktop_page(frame_url, session_token())) as impostor:
        sealos_settings.SEALOS_DESKTOP_ORIGINS = ["https://cloud.sealos.example"]
        page = chromium.new_page()
        page.goto(impostor.origin + "/")
        page.wait_for_timeout(2000)
        page.close()

    assert get_user_model().objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_an_expired_session_shows_the_reason_in_the_page(chromium, live_server, sealos_settings):
    now = int(time.time())
    frame_url = f"{live_server.url}/identities/sealos/"
    with Desktop(desktop_page(frame_url, session_token(iat=now - 7200, exp=now - 60))) as desktop:
        sealos_settings.SEALOS_DESKTOP_ORIGINS = [desktop.origin]
        page = chromium.new_page()
        page.goto(desktop.origin + "/")
        status = page.frame_locator("#app").locator('#sealos-status[data-state="failed"]')
        message = status.inner_text(timeout=15000)
        page.close()

    assert message == "The Sealos session has expired; reopen the app from Sealos."
    assert get_user_model().objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_opened_outside_sealos_the_page_says_so(chromium, live_server, sealos_settings):
    page = chromium.new_page()
    page.goto(f"{live_server.url}/identities/sealos/")
    page.wait_for_selector('#sealos-status[data-state="failed"]', timeout=10000)
    message = page.inner_text("#sealos-status")
    page.close()

    assert message == "This page is not open inside the Sealos desktop."
    assert get_user_model().objects.count() == 0
