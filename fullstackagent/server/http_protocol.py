"""uvicorn's HTTP protocol (httptools), with a limit on the size of a request's head.

uvicorn's httptools protocol keeps a request's URL and headers in memory until the head is
complete, however long it grows: one anonymous connection sending a single 200 MiB header made a
web process grow by 366 MiB (daphne, the server before, cut the same connection off after 16 KiB,
Twisted's limit). This protocol answers 431 and closes the connection when a request's URL and
headers pass HEAD_MAX_BYTES:

- a head that is still arriving, by what was received since the request began (checked after each
  read of the socket: at most one read more is kept);
- a complete head, by the size of its URL and headers.

With pipelined requests, the end of the previous request that came in the same read counts towards
the first check too; clients send one request at a time in practice.
"""

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Request line and headers together. Browsers send a few KiB (cookies are limited to 4 KiB each);
# nginx accepts 4 buffers of 8 KiB by default, Node.js 16 KiB.
HEAD_MAX_BYTES = 64 * 1024

_TOO_LARGE_BODY = b"Request header fields too large.\n"
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_TOO_LARGE_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _TOO_LARGE_BODY
)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    _head_open = False  # a request has begun and its headers are not complete yet
    _received_in_head = 0  # bytes read from the socket since then
    _head_size = 0  # of its URL and headers, as parsed
    _refused = False

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_open:
            self._received_in_head += len(data)
            if self._received_in_head > HEAD_MAX_BYTES:
                self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open, self._received_in_head, self._head_size = True, 0, 0

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4  # ": " and the line end
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        if self._head_size > HEAD_MAX_BYTES:
            self._refuse()
            return  # no request cycle: the application never sees it
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def _refuse(self) -> None:
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(_TOO_LARGE)
            self.transport.close()
