"""The request-size limit in front of Django: a body larger than the limit of its path is answered
413 as soon as its size is known, before it is read.

Why here and not in Django: daphne (Twisted) receives a whole request body before it calls the
application, then queues all of it, in memory, for the application to read. A 512 MB POST to any
URL, anonymous or not, made one web process grow by 500 MB before Django could say 403. So the
limit sits in daphne's request object:

- with a ``Content-Length``, when the headers are in (``gotLength``): the answer goes out before a
  byte of the body is read, and a client that sent ``Expect: 100-continue`` never sends it;
- without one (chunked transfer encoding), as the chunks arrive: at most the limit is kept.

The connection is then closed, as Twisted does for a malformed request: the unread body is not
drained. ``ThreadedDjangoHTTP`` checks the same limits while it reads a body, for any other ASGI
server the application may run under.

Limits (README "Limits and security"): ``REQUEST_BODY_MAX_BYTES`` for every path, and the larger
``TERMINAL_UPLOAD_CHUNK_BYTES`` for the terminal's upload endpoint, whose body is one raw chunk of
a file.
"""

import json
import re
from functools import lru_cache

from daphne import http_protocol
from django.conf import settings

from fullstackagent.exceptions import too_large_message

_UPLOAD_PATH = re.compile(r"^/projects/\d+/terminal/upload/?$")


def body_limit(path: str) -> int:
    """The largest request body accepted on ``path`` (without its query string)."""
    if _UPLOAD_PATH.match(path):
        return settings.TERMINAL_UPLOAD_CHUNK_BYTES
    return settings.REQUEST_BODY_MAX_BYTES


def too_large_response(path: str, accept: str, limit: int) -> tuple[str, bytes]:
    """(content type, body) of the 413: the API's error shape under /api/ or for clients asking for
    JSON (the page's fetch() calls), a short HTML page otherwise."""
    message = too_large_message(limit)
    if path.startswith("/api/") or "application/json" in accept:
        return "application/json", json.dumps({"message": message, "code": "REQUEST_TOO_LARGE"}).encode()
    page = f"<!DOCTYPE html><html><head><title>Request too large</title></head><body><h1>Request too large</h1><p>{message}</p></body></html>"
    return "text/html; charset=utf-8", page.encode()


class _Discarded:
    """Stands in for a refused request's body file: what still arrives is dropped."""

    closed = False

    def write(self, data):
        pass

    def read(self, size=-1):
        return b""

    def seek(self, *args):
        return 0

    def close(self):
        self.closed = True


class LimitedWebRequest(http_protocol.WebRequest):
    """daphne's request, refusing a body over its path's limit before reading it."""

    _refused = False
    _received = 0
    _limit = None

    def _path_only(self) -> str:
        # The request line was parsed by the channel; the request's own ``path`` is only set once
        # the whole body is in, which is too late.
        raw = getattr(self.channel, "_path", b"") or b""
        return raw.split(b"?", 1)[0].decode("latin1")

    def gotLength(self, length):
        path = self._path_only()
        self._limit = body_limit(path)
        if length is not None and length > self._limit:
            self._refuse(path)
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self._refused:
            return
        self._received += len(data)
        if self._limit is not None and self._received > self._limit:
            self._refuse(self._path_only())
            return
        super().handleContentChunk(data)

    def process(self):
        if self._refused:
            return None  # the 413 is sent; the application never sees this request
        return super().process()

    def _refuse(self, path: str) -> None:
        self._refused = True
        old_content = getattr(self, "content", None)
        if old_content is not None:
            old_content.close()
        self.content = _Discarded()
        # Otherwise Twisted would answer "100 Continue" after the 413, inviting the body.
        self.requestHeaders.removeHeader(b"Expect")
        accept = b",".join(self.requestHeaders.getRawHeaders(b"Accept") or []).decode("latin1")
        content_type, body = too_large_response(path, accept, self._limit)
        self.channel.transport.write(
            b"HTTP/1.1 413 Content Too Large\r\n"
            + f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n".encode()
            + b"Connection: close\r\n\r\n"
            + body
        )
        self.channel.loseConnection()


@lru_cache(maxsize=1)
def install() -> None:
    """Makes daphne build LimitedWebRequest for every HTTP request of this process.

    daphne has no setting or hook for a body limit; its HTTPFactory looks ``WebRequest`` up in its
    module on every connection, so replacing that name is the one place that reaches both
    ``python -m fullstackagent.server.serve`` and a plain ``daphne fullstackagent.asgi:application``.
    Called when fullstackagent.asgi is imported, i.e. before daphne accepts a connection.
    """
    http_protocol.WebRequest = LimitedWebRequest
