"""The terminal proxy: a browser websocket on the platform, relayed to the sandbox's ttyd.

``/ws/projects/<id>/terminal/?session=<name>``. The browser authenticates with its session cookie
(AuthMiddleware in fullstackagent.asgi); the proxy adds the terminal credential upstream, so the token
never reaches the browser. Checks, in this order, each refused with its own close code (see
sandboxes.terminal): session name (4400), Origin (4403), signed in (4401), owner (4404), sandbox
RUNNING (4409); then the upstream connection (4502 when it fails or later closes). The Origin comes
first so a foreign page cannot even learn whether its visitor is signed in.

The socket is accepted before the checks: a close before the accept becomes a bare HTTP 403 from
the server, and the page could not tell "sign in again" from "this sandbox is stopped". Nothing reaches
the upstream before every check passed.
"""

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs

import websockets
from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from django.conf import settings

from fullstackagent import metrics
from sandboxes import terminal
from sandboxes.activity import anote_activity
from sandboxes.terminal import TerminalRefused

logger = logging.getLogger(__name__)

# Keepalive towards ttyd, so an idle terminal survives proxies and load balancers (an nginx ingress
# drops a websocket after 60 s of silence by default). The web server pings the browser side itself
# (every 20 s, fullstackagent.server.web_process).
UPSTREAM_PING_SECONDS = 20
UPSTREAM_OPEN_TIMEOUT_SECONDS = 10
# ttyd's page sends its size at once; a client that never does holds a connection for nothing.
FIRST_FRAME_TIMEOUT_SECONDS = 30
UPSTREAM_CLOSE_TIMEOUT_SECONDS = 2
# Threads admitting terminals at once: the work is short queries under one GIL; a few suffice for
# a burst to overlap its database round trips.
ADMISSION_THREADS = 4


# Admissions, their periodic re-checks and the audit's close run on threads of their own, several
# at once: channels' database_sync_to_async runs everything on one shared thread by default, so
# every terminal opening after a deploy waited for all the others' database work (400 opens took
# 3-4 times as long through the relay as straight to ttyd). Each call still opens and returns its
# database connection as database_sync_to_async does (close_old_connections around it).
_admission_executor = ThreadPoolExecutor(max_workers=ADMISSION_THREADS, thread_name_prefix="terminal-admission")


def on_admission_thread(function):
    return database_sync_to_async(function, thread_sensitive=False, executor=_admission_executor)


async def connect_upstream(upstream, session_name: str):
    """Opens the websocket to ttyd. A module-level function so tests can count the connections.

    Compression off: terminal output is small frames and the hop is local or in-cluster, where
    deflate costs more CPU than it saves. No size limit: ttyd sends what the shell printed. No
    proxy from the environment: the upstream is the platform's own sandbox, and HTTPS_PROXY (for
    calls to the outside) must not carry a terminal credential elsewhere; looking it up was also
    a tenth of the connection's CPU.
    """
    separator = "&" if "?" in upstream.url else "?"
    return await websockets.connect(
        f"{upstream.url}{separator}arg={session_name}",
        subprotocols=list(upstream.subprotocols),
        additional_headers=dict(upstream.headers),
        compression=None,
        max_size=None,
        proxy=None,
        open_timeout=UPSTREAM_OPEN_TIMEOUT_SECONDS,
        ping_interval=UPSTREAM_PING_SECONDS,
        ping_timeout=UPSTREAM_PING_SECONDS,
        close_timeout=UPSTREAM_CLOSE_TIMEOUT_SECONDS,
    )


def authenticated_init_frame(frame: bytes | str, auth_token: str) -> bytes:
    """ttyd's first frame is JSON ``{"columns": C, "rows": R}``; the proxy adds ``AuthToken`` (and
    replaces any the browser sent, so a browser can never choose the credential)."""
    try:
        init = json.loads(frame)
    except (ValueError, UnicodeDecodeError):
        raise TerminalRefused(terminal.CLOSE_BAD_REQUEST, "The first frame must be ttyd's JSON size message.")
    if not isinstance(init, dict):
        raise TerminalRefused(terminal.CLOSE_BAD_REQUEST, "The first frame must be a JSON object.")
    init = {key: value for key, value in init.items() if key != "AuthToken"}
    init["AuthToken"] = auth_token
    return json.dumps(init).encode()


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _relay_send(send):
    """The server's own send callable, below channels' SessionMiddleware wrapper.

    The wrapper saves a modified session on HTTP responses only, yet reads the session twice through
    lazy-object proxies on every message: a tenth of the web process's time (daphne's, then) when relaying bulk output
    (measured with py-spy while running bench/terminal.py). The relay never touches the session, so
    its frames skip the wrapper; anything not shaped like it is used as is.
    """
    wrapper = getattr(send, "__self__", None)
    real_send = getattr(wrapper, "real_send", None)
    if real_send is not None and type(wrapper).__name__ == "InstanceSessionWrapper":
        return real_send
    return send


class TerminalConsumer(AsyncConsumer):
    """One browser terminal. Subclasses AsyncConsumer for ``as_asgi`` but runs its own loop:
    AsyncConsumer's dispatch adds a thread hop (close_old_connections) and a task per message, which
    a keystroke relay should not pay, and a terminal needs no channel layer."""

    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.base_send = send
        admission = None
        upstream = None
        meter = None  # open relays and relayed bytes, for /metrics
        counts = {"from_browser": 0, "to_browser": 0}
        close_code = 1006  # "abnormal": kept if this task is cancelled half-way
        try:
            message = await receive()
            if message["type"] != "websocket.connect":
                return
            await send({"type": "websocket.accept"})
            try:
                admission = await self._admit()
                upstream = await self._open_upstream(admission)
                meter = metrics.TerminalMeter()
                first = await self._first_frame(receive)
                if first is None:  # the browser left before saying its size
                    close_code = 1001
                    return
                counts["from_browser"] += len(first)
                await upstream.send(authenticated_init_frame(first, admission.upstream.auth_token))
            except TerminalRefused as refusal:
                close_code = refusal.close_code
                # The reason is for the logs only; the page knows the codes.
                logger.info("terminal refused (%s): %s", refusal.close_code, refusal)
                await send({"type": "websocket.close", "code": refusal.close_code})
                return
            close_code = await self._relay(receive, _relay_send(send), upstream, counts, meter, admission.sandbox_id)
        finally:
            if meter is not None:
                meter.close(counts)
            if upstream is not None:
                await self._close_upstream(upstream)
            if admission is not None:
                await on_admission_thread(terminal.do_finish_terminal)(
                    admission.terminal_session_id,
                    bytes_from_browser=counts["from_browser"],
                    bytes_to_browser=counts["to_browser"],
                    close_code=close_code,
                )

    async def _admit(self):
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        session_name = terminal.valid_session_name((query.get("session") or [None])[0])
        if not terminal.origin_allowed(_header(self.scope, b"origin"), _header(self.scope, b"host")):
            raise TerminalRefused(terminal.CLOSE_FOREIGN_ORIGIN, "Origin not allowed.")
        self.session_name = session_name
        self.project_id = int(self.scope["url_route"]["kwargs"]["project_id"])
        client = self.scope.get("client") or ("", 0)
        self.user, admission = await on_admission_thread(terminal.do_admit_session)(
            self.scope.get("session"), self.project_id, session_name, str(client[0] or "")
        )
        return admission

    async def _open_upstream(self, admission):
        try:
            return await connect_upstream(admission.upstream, self.session_name)
        except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as error:
            # The exception names the URL at most; the credential is in headers it does not print.
            raise TerminalRefused(terminal.CLOSE_UPSTREAM_GONE, f"Terminal upstream unreachable: {error}")

    async def _first_frame(self, receive) -> bytes | str | None:
        try:
            async with asyncio.timeout(FIRST_FRAME_TIMEOUT_SECONDS):
                message = await receive()
        except TimeoutError:
            raise TerminalRefused(terminal.CLOSE_BAD_REQUEST, "No size message from the browser.")
        if message["type"] != "websocket.receive":
            return None
        return message.get("bytes") if message.get("bytes") is not None else message.get("text", "").encode()

    async def _relay(self, receive, send, upstream, counts, meter, sandbox_id: int) -> int:
        """Two tasks, one per direction, frames passed through untouched. Returns the close code.
        Every frame either way is use of the sandbox (idle stop); anote_activity writes at most
        once per interval, so a frame usually costs no query."""

        async def browser_to_upstream():
            while True:
                message = await receive()
                if message["type"] == "websocket.receive":
                    await anote_activity(sandbox_id)
                    data = message.get("bytes")
                    if data is None:
                        data = message.get("text", "")
                        counts["from_browser"] += len(data.encode())
                    else:
                        counts["from_browser"] += len(data)
                    try:
                        await upstream.send(data)
                    except websockets.ConnectionClosed:
                        return None
                elif message["type"] == "websocket.disconnect":
                    return message.get("code", 1000)

        async def upstream_to_browser():
            try:
                async for frame in upstream:
                    await anote_activity(sandbox_id)
                    if isinstance(frame, str):
                        counts["to_browser"] += len(frame.encode())
                        await send({"type": "websocket.send", "text": frame})
                    else:
                        counts["to_browser"] += len(frame)
                        await send({"type": "websocket.send", "bytes": frame})
            except websockets.ConnectionClosed:
                pass  # an abrupt end is reported like a clean one: the terminal is gone either way
            return None

        async def admission_lapses():
            # Sign-out, a password change, the project no longer the user's: the open terminal
            # closes too (issue 14). Polled, as the web processes share no channel layer.
            user, session = self.user, self.scope.get("session")
            while True:
                await asyncio.sleep(settings.TERMINAL_RECHECK_SECONDS)
                meter.flush(counts)  # a long session's bytes show while it lasts
                code = await on_admission_thread(terminal.terminal_lapsed)(user.pk, session, self.project_id)
                if code is not None:
                    return code

        # Any task ending ends the connection: the browser's code when it left, the lapsed
        # admission's code, otherwise (None) the upstream is gone and the browser is told so.
        tasks = [
            asyncio.create_task(browser_to_upstream()),
            asyncio.create_task(upstream_to_browser()),
            asyncio.create_task(admission_lapses()),
        ]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            browser_close_code = tasks[0].result() if tasks[0] in done else None
            lapsed_code = tasks[2].result() if tasks[2] in done else None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if browser_close_code is not None:
            return browser_close_code
        if lapsed_code is not None:
            logger.info("terminal closed (%s): its user may no longer use it", lapsed_code)
            await send({"type": "websocket.close", "code": lapsed_code})
            return lapsed_code
        await send({"type": "websocket.close", "code": terminal.CLOSE_UPSTREAM_GONE})
        return terminal.CLOSE_UPSTREAM_GONE

    async def _close_upstream(self, upstream) -> None:
        try:
            async with asyncio.timeout(UPSTREAM_CLOSE_TIMEOUT_SECONDS + 1):
                await upstream.close()
        except (TimeoutError, OSError, websockets.WebSocketException):
            pass
