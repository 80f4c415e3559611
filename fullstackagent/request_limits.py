"""The request-size limit in front of Django: a body larger than the limit of its path is answered
413 as soon as its size is known, before it is read.

Why here and not in Django: Django reads a body only when a view asks for it, after the session,
the user and the view's own checks; a 512 MB POST to any URL, anonymous or not, would be received
(into memory, or a temporary file) before Django could say 403. So ``ThreadedDjangoHTTP``, which
receives the body from the server for Django, applies the limit of the request's path:

- with a ``Content-Length``, when the headers are in: the answer goes out before a byte of the body
  is read, and a client that sent ``Expect: 100-continue`` is never invited to send it;
- without one (chunked transfer encoding), as the chunks arrive: at most the limit is kept.

The connection is then closed: the unread body is not drained. uvicorn reads no further from a
socket once about 64 KiB of unread body is buffered, so a refused body costs the web process no
memory. (Under daphne, the server of earlier versions, a body was received whole before the
application was called; this module replaced daphne's request class to refuse it.)

Limits (README "Limits and security"): ``REQUEST_BODY_MAX_BYTES`` for every path, and the larger
``TERMINAL_UPLOAD_CHUNK_BYTES`` for the terminal's upload endpoint, whose body is one raw chunk of
a file.
"""

import json
import re

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


def announced_length(headers) -> int:
    """The Content-Length of an ASGI scope's headers; 0 when there is none (or it is malformed: the
    server has refused such a request already, or reads it as chunks, which are counted)."""
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
