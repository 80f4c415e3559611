"""A minimal ttyd websocket client for tests and benchmarks: speaks ttyd's protocol to a
TerminalUpstream the way the platform's proxy does (token in the first JSON frame)."""

import asyncio
import json
import re

import websockets

INPUT, RESIZE = b"0", b"1"
OUTPUT = ord("0")
_ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]|\r")
# A move of the cursor to another row (CUP, HVP, VPA): what follows is drawn elsewhere on the screen.
_MOVE = re.compile(rb"\x1b\[[0-9]*(?:;[0-9]*)?[Hfd]")


def strip_ansi(data: bytes) -> str:
    """The text of terminal output without its escape sequences. A cursor move becomes a line
    break: tmux redraws its status line (the clock, the window's command) by moving to the last row
    and back, and without the break that text ran into the line being written ("…02-Dec-26written")."""
    return _ANSI.sub(b"", _MOVE.sub(b"\n", data)).decode(errors="replace")


class TtydSession:
    def __init__(self, websocket):
        self.websocket = websocket
        self.output = bytearray()

    async def send(self, text: str) -> None:
        await self.websocket.send(INPUT + text.encode())

    async def resize(self, columns: int, rows: int) -> None:
        await self.websocket.send(RESIZE + json.dumps({"columns": columns, "rows": rows}).encode())

    async def expect(self, pattern: str, timeout: float = 10.0) -> str:
        """Reads output until ``pattern`` (a regex) matches the ANSI-stripped output; returns it."""
        regex = re.compile(pattern)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            text = strip_ansi(bytes(self.output))
            if regex.search(text):
                return text
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{pattern!r} not seen; output was:\n{text[-2000:]}")
            try:
                frame = await asyncio.wait_for(self.websocket.recv(), remaining)
            except asyncio.TimeoutError:
                continue
            if isinstance(frame, str):
                frame = frame.encode()
            if frame and frame[0] == OUTPUT:
                self.output += frame[1:]


async def open_session(upstream, session: str = "main", columns: int = 120, rows: int = 30, token=None):
    """Connects to ttyd; ``token`` overrides the upstream's (None: the right one, "": none at all)."""
    separator = "&" if "?" in upstream.url else "?"
    websocket = await websockets.connect(
        f"{upstream.url}{separator}arg={session}",
        subprotocols=list(upstream.subprotocols),
        additional_headers=dict(upstream.headers) if token is None else {},
        open_timeout=5,
        max_size=None,
    )
    init = {"columns": columns, "rows": rows}
    auth = upstream.auth_token if token is None else token
    if auth:
        init["AuthToken"] = auth
    await websocket.send(json.dumps(init).encode())
    return TtydSession(websocket)


def run_command(upstream, command: str, expect: str, session: str = "main", timeout: float = 15.0) -> str:
    """Runs ``command`` in a terminal and returns the output once ``expect`` (regex) shows."""

    async def go():
        terminal = await open_session(upstream, session=session)
        try:
            # Type only once the shell has drawn something: keys sent before tmux attached can be lost.
            await terminal.expect(r"\S", timeout=timeout)
            await terminal.send(command + "\r")
            return await terminal.expect(expect, timeout=timeout)
        finally:
            await terminal.websocket.close()

    return asyncio.run(go())
