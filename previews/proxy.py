"""The preview proxy: ``<label>.<PREVIEW_DOMAIN>`` → the project's app, HTTP and websockets.

Mounted in front of the platform's ASGI application (``PreviewRouter``): a request whose Host is a
preview host never reaches Django's middleware, views or session. Each preview is an origin of its
own, so the app cannot read the platform's cookies, and the platform's session cookie (host-only)
is never sent here: access is the preview's own cookie, set by

- ``/__preview/handoff?token=…&next=/path``: a single-use ticket the platform made for the signed-in
  owner (previews.views.open_preview), or
- ``/__preview/share/<token>``: a share link the owner made, valid until revoked.

The cookie is stripped from what the app receives. Every request re-checks the grant against the
database (cached for ``ACCESS_CACHE_SECONDS``), so a revoked share or a project that changed hands
stops working at once. Bodies stream both ways; nothing is buffered whole.
"""

import asyncio
import logging
import time
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, quote

import aiohttp
from channels.db import database_sync_to_async
from django.conf import settings
from django.template.loader import render_to_string

from fullstackagent.status import ResourceStatus
from previews import grants
from previews.hosts import is_preview_host, project_id_for_host
from sandboxes.activity import anote_activity

logger = logging.getLogger(__name__)

ACCESS_CACHE_SECONDS = 2.0
UPSTREAM_CONNECT_TIMEOUT_SECONDS = 5
# Not forwarded either way (RFC 9110 §7.6.1), plus what the proxy sets itself.
HOP_BY_HOP = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection",
        b"te", b"trailer", b"transfer-encoding", b"upgrade",
    }
)
_WEBSOCKET_HANDSHAKE = frozenset(
    {b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions", b"sec-websocket-protocol"}
)


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


def _cookie(scope, name: str) -> str:
    try:
        jar = SimpleCookie(_header(scope, b"cookie"))
    except CookieError:
        return ""
    morsel = jar.get(name)
    return morsel.value if morsel else ""


def _without_preview_cookie(value: bytes) -> bytes:
    """The Cookie header minus the proxy's own cookie: the app never sees the credential."""
    kept = [part for part in value.split(b";") if part.strip().split(b"=", 1)[0] != grants.COOKIE_NAME.encode()]
    return b";".join(kept).strip()


def _set_cookie_header(value: str) -> bytes:
    # The preview pane is an iframe on the platform's page, another site: browsers that block
    # third-party cookies keep a Partitioned (CHIPS) one, for that embedding only (a tab of its own
    # gets its own hand-off). Partitioned needs Secure, which browsers take from https and from
    # http://*.localhost. Elsewhere on plain http, Lax: the preview works in its own tab only.
    secure = settings.PREVIEW_SCHEME == "https" or settings.PREVIEW_DOMAIN.endswith("localhost")
    attributes = "; Secure; SameSite=None; Partitioned" if secure else "; SameSite=Lax"
    return (
        f"{grants.COOKIE_NAME}={value}; Path=/; HttpOnly; Max-Age={settings.PREVIEW_COOKIE_MAX_AGE_SECONDS}{attributes}"
    ).encode()


def _safe_next(value: str) -> str:
    """A path on the preview's own origin (never //host or /\\host, which browsers treat as hosts)."""
    if value.startswith("/") and not value.startswith(("//", "/\\")) and "\r" not in value and "\n" not in value:
        return value
    return "/"


def _platform_url(path: str) -> str:
    return f"{settings.PUBLIC_URL}{path}" if settings.PUBLIC_URL else path


class PreviewRouter:
    """Sends preview hosts to the proxy and everything else to the platform."""

    def __init__(self, platform):
        self.platform = platform
        self.proxy = PreviewProxy()

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and is_preview_host(_header(scope, b"host")):
            return await self.proxy(scope, receive, send)
        return await self.platform(scope, receive, send)


class PreviewProxy:
    def __init__(self):
        self._session: aiohttp.ClientSession | None = None
        self._access_cache: dict[tuple[str, int], tuple[float, grants.Access | None]] = {}

    def session(self) -> aiohttp.ClientSession:
        # Created on first use, inside the server's event loop. No cookie jar (the browser's cookies
        # pass through as headers), no decompression (bytes go through as the app sent them).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(limit=0, force_close=False),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=UPSTREAM_CONNECT_TIMEOUT_SECONDS),
            )
        return self._session

    async def __call__(self, scope, receive, send):
        host = _header(scope, b"host")
        project_id = project_id_for_host(host)
        if scope["type"] == "websocket":
            return await self._websocket(scope, receive, send, host, project_id)
        return await self._http(scope, receive, send, host, project_id)

    # --- who may see it -------------------------------------------------------------------------

    async def _access(self, scope, project_id: int) -> grants.Access | None:
        cookie = _cookie(scope, grants.COOKIE_NAME)
        grant = grants.Grant.from_cookie(cookie, project_id)
        if grant is None:
            return None
        key = (cookie, project_id)
        now = time.monotonic()
        cached = self._access_cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        access = await database_sync_to_async(grants.check)(grant)
        if len(self._access_cache) > 10_000:
            self._access_cache.clear()
        self._access_cache[key] = (now + ACCESS_CACHE_SECONDS, access)
        return access

    # --- HTTP -----------------------------------------------------------------------------------

    async def _http(self, scope, receive, send, host: str, project_id: int | None):
        path = scope.get("path", "/")
        if project_id is None:
            return await self._page(send, 404, "No such preview", "This address names no project.")
        if path == "/__preview/handoff":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            grant = await database_sync_to_async(grants.consume_handoff)(
                (query.get("token") or [""])[0], project_id
            )
            if grant is None:
                return await self._page(
                    send, 403, "This link has expired",
                    "Preview links from FullstackAgent work once, for a minute.",
                    link=(_platform_url(f"/projects/{project_id}/preview/"), "Open the preview again"),
                )
            return await self._redirect(send, _safe_next((query.get("next") or ["/"])[0]), grant)
        if path.startswith("/__preview/share/"):
            grant = await database_sync_to_async(grants.grant_for_share_token)(path.rsplit("/", 1)[-1], project_id)
            if grant is None:
                return await self._page(send, 404, "This share link no longer works", "Its owner revoked it, or it never existed.")
            return await self._redirect(send, "/", grant)

        access = await self._access(scope, project_id)
        if access is None:
            next_path = quote(path + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""))
            return await self._page(
                send, 401, "This preview is private",
                "Only the project's owner, signed in to FullstackAgent, or someone with a share link can open it.",
                link=(_platform_url(f"/projects/{project_id}/preview/?next={next_path}"), "Sign in and open it"),
            )
        if access.sandbox_status != ResourceStatus.RUNNING or not access.upstream:
            return await self._not_running(send, access)
        await _note_activity(access.sandbox_id)
        await self._forward(scope, receive, send, host, access)

    async def _not_running(self, send, access: grants.Access):
        status = access.sandbox_status
        if status == ResourceStatus.STOPPED and access.owner and await database_sync_to_async(grants.wake_for_owner)(access.project_id):
            status = ResourceStatus.STARTING
        if status in ResourceStatus.transitional() or status == ResourceStatus.RUNNING:
            return await self._page(
                send, 503, "Starting the sandbox…", f"The project is {status.lower()}; this page reloads until its app answers.",
                refresh=2,
            )
        return await self._page(
            send, 503, "The project is not running",
            "Its owner can start it from FullstackAgent." if not access.owner else f"Its sandbox is {status.lower()}.",
            link=(_platform_url(f"/projects/{access.project_id}/"), "Open the project") if access.owner else None,
        )

    async def _forward(self, scope, receive, send, host: str, access: grants.Access):
        headers = self._upstream_headers(scope, host)
        has_body = any(key in (b"content-length", b"transfer-encoding") for key, _ in scope["headers"])
        if any(key == b"transfer-encoding" for key, _ in scope["headers"]):
            headers = [(key, value) for key, value in headers if key != "Content-Length"]

        async def body():
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                if message.get("body"):
                    yield message["body"]
                if not message.get("more_body"):
                    return

        target = access.upstream + (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        try:
            response = await self.session().request(
                scope["method"], target, headers=headers, data=body() if has_body else None,
                allow_redirects=False, compress=None, skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            )
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, asyncio.TimeoutError):
            return await self._page(
                send, 502, "Nothing answers yet",
                f"Start your app in the terminal on port $PORT ({access.app_port}); this page reloads until it answers.",
                refresh=3,
            )
        async with response:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [
                        (key.lower(), value) for key, value in response.raw_headers if key.lower() not in HOP_BY_HOP
                    ],
                }
            )
            try:
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except aiohttp.ClientError:
                logger.info("preview of project %s: the app ended a response early", access.project_id)
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _upstream_headers(self, scope, host: str, websocket: bool = False) -> list[tuple[str, str]]:
        headers = []
        for key, value in scope["headers"]:
            if key in HOP_BY_HOP or (websocket and key in _WEBSOCKET_HANDSHAKE):
                continue
            if key == b"cookie":
                value = _without_preview_cookie(value)
                if not value:
                    continue
            if key.startswith(b"x-forwarded-"):
                continue  # the proxy says these itself; a browser cannot choose them
            headers.append((key.decode("latin-1").title(), value.decode("latin-1")))
        client = scope.get("client") or ("", 0)
        headers += [
            ("X-Forwarded-For", client[0] or ""),
            ("X-Forwarded-Proto", settings.PREVIEW_SCHEME),
            ("X-Forwarded-Host", host),
        ]
        return headers

    async def _redirect(self, send, location: str, grant: grants.Grant):
        await send(
            {
                "type": "http.response.start",
                "status": 302,
                "headers": [
                    (b"location", location.encode("latin-1", "replace")),
                    (b"set-cookie", _set_cookie_header(grant.cookie_value())),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _page(self, send, status: int, title: str, detail: str, *, link=None, refresh: int | None = None):
        body = render_to_string(
            "previews/page.html", {"title": title, "detail": detail, "link": link, "refresh": refresh}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    # --- websockets -----------------------------------------------------------------------------

    async def _websocket(self, scope, receive, send, host: str, project_id: int | None):
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        access = await self._access(scope, project_id) if project_id is not None else None
        if access is None or access.sandbox_status != ResourceStatus.RUNNING or not access.upstream:
            # Refused before the accept: the browser sees the handshake fail (HTTP 403).
            return await send({"type": "websocket.close", "code": 4401 if access is None else 4409})
        target = "ws" + access.upstream[4:] + (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        try:
            upstream = await self.session().ws_connect(
                target,
                headers=self._upstream_headers(scope, host, websocket=True),
                protocols=scope.get("subprotocols") or (),
                autoping=True,
                max_msg_size=0,
                compress=0,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return await send({"type": "websocket.close", "code": 4502})
        await _note_activity(access.sandbox_id)
        await send({"type": "websocket.accept", "subprotocol": upstream.protocol})
        await self._relay(receive, send, upstream, access.sandbox_id)

    async def _relay(self, receive, send, upstream, sandbox_id: int):
        async def browser_to_app():
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    await upstream.send_bytes(message["bytes"])
                elif message.get("text") is not None:
                    await upstream.send_str(message["text"])
                await _note_activity(sandbox_id)

        async def app_to_browser():
            async for frame in upstream:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    await send({"type": "websocket.send", "text": frame.data})
                elif frame.type == aiohttp.WSMsgType.BINARY:
                    await send({"type": "websocket.send", "bytes": frame.data})
                else:
                    break
                await _note_activity(sandbox_id)
            await send({"type": "websocket.close", "code": upstream.close_code or 1000})

        tasks = [asyncio.create_task(browser_to_app()), asyncio.create_task(app_to_browser())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await upstream.close()


async def _note_activity(sandbox_id: int | None) -> None:
    """Preview traffic keeps the sandbox from being stopped as idle (usually no query at all)."""
    if sandbox_id is not None:
        await anote_activity(sandbox_id)
