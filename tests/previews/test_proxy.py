"""The preview proxy in the real platform server (two web processes), in front of a real app
server: who gets in (the owner through the one-time hand-off, share links until revoked; never an
anonymous browser or another user), what the app receives (never the preview's credential), and
what passes through (streamed bodies, websockets, the pages shown while nothing answers).

The app here is an aiohttp server of the test's own, and the sandbox row is put in RUNNING by hand
with that server as its upstream: the proxy is what is under test. tests/ui/test_browser_preview.py
runs the whole path, with an app started in a real sandbox's terminal."""

import asyncio
import hashlib
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import aiohttp
import pytest
import requests
from aiohttp import web
from django.utils import timezone

from fullstackagent.devtools import embedded
from fullstackagent.status import ResourceStatus
from fullstackagent.testing.processes import wait_for
from projects import services
from sandboxes.models import Sandbox

BIG = bytes(range(256)) * (64 * 1024)  # 16 MiB


class AppServer:
    """The user's app: a page that shows the cookies it got, a large download, an upload echo and a
    websocket echo; on a thread with its own event loop."""

    def __init__(self):
        self.port = embedded.free_port()
        self.requests = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _serve(self, ready):
        asyncio.set_event_loop(self.loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/", self.index)
        app.router.add_get("/big", self.big)
        app.router.add_post("/upload", self.upload)
        app.router.add_get("/ws", self.websocket)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.runner = runner
        ready.set()
        self.loop.run_forever()

    async def index(self, request):
        self.requests.append(dict(request.headers))
        return web.Response(text=f"hello from the app; cookies: {request.headers.get('Cookie', '')}", content_type="text/html")

    async def big(self, request):
        response = web.StreamResponse()
        await response.prepare(request)
        for start in range(0, len(BIG), 1 << 20):
            await response.write(BIG[start : start + (1 << 20)])
        await response.write_eof()
        return response

    async def upload(self, request):
        body = await request.read()
        return web.json_response({"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    async def websocket(self, request):
        socket = web.WebSocketResponse(protocols=("hmr",))
        await socket.prepare(request)
        async for message in socket:
            await socket.send_str(f"echo: {message.data}")
        return socket

    def stop(self):
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@pytest.fixture
def app_server():
    server = AppServer()
    yield server
    server.stop()


@pytest.fixture
def project(user, app_server, live_platform):
    project = services.do_create_project(user, name="Preview Me")
    Sandbox.objects.filter(project=project).update(
        status=ResourceStatus.RUNNING, app_upstream=f"http://127.0.0.1:{app_server.port}"
    )
    return project


def _browser(live_platform, user=None) -> requests.Session:
    """A browser's cookie jar for the platform (signed in as ``user``), that follows no redirects."""
    from django.conf import settings
    from django.test import Client

    session = requests.Session()
    if user is not None:
        client = Client()
        client.force_login(user)
        session.cookies.set(settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value, domain="127.0.0.1")
    return session


def _on_preview(session: requests.Session, live_platform, url: str, method="GET", **kwargs) -> requests.Response:
    """A request to a preview URL (http://p12.preview.localhost:PORT/...), sent to the platform's
    address with the preview's Host, with the cookies a browser keeps for that host."""
    parts = urlsplit(url)
    target = f"{live_platform.url}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    jar = session.cookies.get("fsa_preview", domain=parts.hostname)
    headers = {"Host": parts.netloc, **kwargs.pop("headers", {})}
    if jar:
        headers["Cookie"] = f"fsa_preview={jar}"
    response = requests.request(method, target, headers=headers, allow_redirects=False, timeout=30, **kwargs)
    if "fsa_preview" in response.cookies:
        session.cookies.set("fsa_preview", response.cookies["fsa_preview"], domain=parts.hostname)
    return response


def _answering(status: int, request) -> requests.Response:
    """The first response with ``status`` (the proxy caches a grant's check for a moment)."""
    responses = []
    wait_for(lambda: responses.append(request()) or responses[-1].status_code == status, timeout=10, message=f"a {status}")
    return responses[-1]


def _open_as_owner(session, live_platform, project, next_path="/") -> str:
    """What the browser does when the owner clicks the preview: the platform's hand-off, then the
    preview origin's cookie. Returns the preview origin."""
    handoff = session.get(f"{live_platform.url}/projects/{project.pk}/preview/?next={next_path}", allow_redirects=False)
    assert handoff.status_code == 302, handoff.text[:300]
    location = handoff.headers["Location"]
    assert location.startswith(f"http://p{project.pk}.preview.localhost:{live_platform.port}/__preview/handoff?token=")
    landed = _on_preview(session, live_platform, location)
    assert landed.status_code == 302 and landed.headers["Location"] == next_path
    assert "HttpOnly" in landed.headers["Set-Cookie"]
    return location.split("/__preview/")[0]


def test_the_owner_gets_in_through_the_hand_off_and_the_app_never_sees_a_credential(live_platform, user, project, app_server):
    owner = _browser(live_platform, user)
    origin = _open_as_owner(owner, live_platform, project)

    page = _on_preview(owner, live_platform, f"{origin}/", headers={"Cookie": "theme=dark"})

    assert page.status_code == 200, page.text[:300]
    assert page.text.startswith("hello from the app")
    seen = app_server.requests[-1]
    # The preview's credential and the platform's session never reach the app.
    assert "fsa_preview" not in seen.get("Cookie", "") and "sessionid" not in seen.get("Cookie", "")
    assert seen["X-Forwarded-Host"] == urlsplit(origin).netloc and seen["Host"] == urlsplit(origin).netloc


def test_the_app_receives_its_own_cookies_without_the_preview_credential(live_platform, user, project, app_server):
    owner = _browser(live_platform, user)
    origin = _open_as_owner(owner, live_platform, project)
    cookie = owner.cookies.get("fsa_preview", domain=urlsplit(origin).hostname)

    page = requests.get(
        f"{live_platform.url}/",
        headers={"Host": urlsplit(origin).netloc, "Cookie": f"theme=dark; fsa_preview={cookie}; cart=3"},
        timeout=30,
    )

    assert page.status_code == 200
    assert app_server.requests[-1]["Cookie"] == "theme=dark; cart=3"


def test_a_hand_off_works_once_and_only_for_its_project(live_platform, user, project):
    owner = _browser(live_platform, user)
    location = owner.get(f"{live_platform.url}/projects/{project.pk}/preview/", allow_redirects=False).headers["Location"]
    assert _on_preview(owner, live_platform, location).status_code == 302

    again = _on_preview(_browser(live_platform), live_platform, location)

    assert again.status_code == 403
    assert "fsa_preview" not in again.cookies
    other_project = services.do_create_project(user, name="Other One")
    fresh = owner.get(f"{live_platform.url}/projects/{project.pk}/preview/", allow_redirects=False).headers["Location"]
    moved = fresh.replace(f"//p{project.pk}.", f"//p{other_project.pk}.")
    assert _on_preview(_browser(live_platform), live_platform, moved).status_code == 403


def test_anonymous_browsers_and_other_users_are_refused(live_platform, user, other_user, project, app_server):
    origin = _open_as_owner(_browser(live_platform, user), live_platform, project)
    served = len(app_server.requests)

    anonymous = _on_preview(_browser(live_platform), live_platform, f"{origin}/")
    assert anonymous.status_code == 401 and "This preview is private" in anonymous.text
    # Another user cannot get a hand-off for it...
    stranger = _browser(live_platform, other_user)
    assert stranger.get(f"{live_platform.url}/projects/{project.pk}/preview/", allow_redirects=False).status_code == 404
    # ...and the cookie of their own project's preview does not open this one.
    theirs = services.do_create_project(other_user, name="Theirs")
    Sandbox.objects.filter(project=theirs).update(status=ResourceStatus.RUNNING, app_upstream=f"http://127.0.0.1:{app_server.port}")
    their_origin = _open_as_owner(stranger, live_platform, theirs)
    their_cookie = stranger.cookies.get("fsa_preview", domain=urlsplit(their_origin).hostname)
    crossed = requests.get(
        f"{live_platform.url}/", headers={"Host": urlsplit(origin).netloc, "Cookie": f"fsa_preview={their_cookie}"}, timeout=30
    )
    assert crossed.status_code == 401
    forged = requests.get(
        f"{live_platform.url}/", headers={"Host": urlsplit(origin).netloc, "Cookie": "fsa_preview=eyJwIjoxfQ:forged:sig"}, timeout=30
    )
    assert forged.status_code == 401
    assert len(app_server.requests) == served  # none of them reached the app


def test_a_share_link_works_until_it_is_revoked(live_platform, user, project, api_client_for):
    api = api_client_for(user)
    created = api.post(f"/api/projects/{project.pk}/preview/shares")
    assert created.status_code == 201, created.content
    share = created.json()
    visitor = _browser(live_platform)

    landed = _on_preview(visitor, live_platform, share["url"])
    assert landed.status_code == 302 and landed.headers["Location"] == "/"
    origin = share["url"].split("/__preview/")[0]
    assert _on_preview(visitor, live_platform, f"{origin}/").status_code == 200
    assert [s["id"] for s in api.get(f"/api/projects/{project.pk}/preview").json()["shares"]] == [share["id"]]

    assert api.delete(f"/api/projects/{project.pk}/preview/shares/{share['id']}").status_code == 200

    wait_for(lambda: _on_preview(visitor, live_platform, f"{origin}/").status_code == 401, timeout=10, message="the revoke to reach the proxy")
    assert _on_preview(_browser(live_platform), live_platform, share["url"]).status_code == 404
    assert api.delete(f"/api/projects/{project.pk}/preview/shares/{share['id']}").status_code == 404


def test_a_share_visitor_does_not_start_a_stopped_project(live_platform, user, project, api_client_for):
    share = api_client_for(user).post(f"/api/projects/{project.pk}/preview/shares").json()
    visitor = _browser(live_platform)
    _on_preview(visitor, live_platform, share["url"])
    Sandbox.objects.filter(project=project).update(status=ResourceStatus.STOPPED)

    page = _answering(503, lambda: _on_preview(visitor, live_platform, share["url"].split("/__preview/")[0] + "/"))

    assert "not running" in page.text
    assert Sandbox.objects.get(project=project).status == ResourceStatus.STOPPED


def test_large_bodies_stream_both_ways(live_platform, user, project):
    owner = _browser(live_platform, user)
    origin = _open_as_owner(owner, live_platform, project)

    download = _on_preview(owner, live_platform, f"{origin}/big", stream=True)
    received = b"".join(download.iter_content(1 << 20))
    upload = _on_preview(owner, live_platform, f"{origin}/upload", method="POST", data=BIG[: 1 << 20])

    assert download.status_code == 200 and len(received) == len(BIG) and received == BIG
    assert upload.json() == {"bytes": 1 << 20, "sha256": hashlib.sha256(BIG[: 1 << 20]).hexdigest()}


def test_websockets_pass_through_with_their_subprotocol(live_platform, user, project):
    owner = _browser(live_platform, user)
    origin = _open_as_owner(owner, live_platform, project)
    cookie = owner.cookies.get("fsa_preview", domain=urlsplit(origin).hostname)

    async def talk(cookie_header):
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(
                f"ws://127.0.0.1:{live_platform.port}/ws",
                headers={"Host": urlsplit(origin).netloc, "Cookie": cookie_header, "Origin": origin},
                protocols=("hmr",),
            ) as socket:
                await socket.send_str("reload?")
                answer = await socket.receive(timeout=10)
                return socket.protocol, answer.data

    assert asyncio.run(talk(f"fsa_preview={cookie}")) == ("hmr", "echo: reload?")
    with pytest.raises(aiohttp.WSServerHandshakeError):
        asyncio.run(talk("fsa_preview=nope"))


def test_an_app_that_does_not_listen_gets_a_page_that_says_what_to_do(live_platform, user, project, app_server):
    owner = _browser(live_platform, user)
    origin = _open_as_owner(owner, live_platform, project)
    app_server.stop()

    page = _on_preview(owner, live_platform, f"{origin}/")

    assert page.status_code == 502
    assert "Start your app in the terminal on port $PORT" in page.text and str(app_server.port) in page.text
    assert 'http-equiv="refresh"' in page.text


def test_opening_the_preview_of_an_idle_stopped_project_starts_it(live_platform, user, project):
    owner = _browser(live_platform, user)
    origin = _open_as_owner(owner, live_platform, project)
    sandbox = Sandbox.objects.get(project=project)
    long_ago = timezone.now() - timedelta(hours=3)
    Sandbox.objects.filter(pk=sandbox.pk).update(last_activity_at=long_ago, status_changed_at=long_ago)
    assert services.do_stop_idle_project(sandbox.pk)
    Sandbox.objects.filter(pk=sandbox.pk).update(status=ResourceStatus.STOPPED)

    page = _answering(503, lambda: _on_preview(owner, live_platform, f"{origin}/"))

    assert "Starting the sandbox" in page.text and 'http-equiv="refresh"' in page.text
    assert Sandbox.objects.get(project=project).status == ResourceStatus.STARTING


def test_a_project_its_owner_stopped_stays_stopped_when_its_preview_is_opened(live_platform, user, project):
    owner = _browser(live_platform, user)
    origin = _open_as_owner(owner, live_platform, project)
    services.do_stop_project(project)
    Sandbox.objects.filter(project=project).update(status=ResourceStatus.STOPPED)

    page = _answering(503, lambda: _on_preview(owner, live_platform, f"{origin}/"))

    assert "The project is not running" in page.text and f"/projects/{project.pk}/" in page.text
    assert Sandbox.objects.get(project=project).status == ResourceStatus.STOPPED


def test_hosts_that_name_no_project_are_not_found(live_platform):
    for host in (f"nothing.preview.localhost:{live_platform.port}", f"a.p1.preview.localhost:{live_platform.port}", f"p1-x.preview.localhost:{live_platform.port}"):
        response = requests.get(f"{live_platform.url}/", headers={"Host": host}, timeout=30)
        assert response.status_code == 404, host
    # The platform itself is still the platform.
    assert requests.get(f"{live_platform.url}/healthz", timeout=30).status_code == 200
