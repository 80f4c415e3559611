"""A real HTTP server on 127.0.0.1, in a thread, for the fakes of outside services (GitHub, Aiproxy)
that tests and local demos talk to over the network."""

import threading
from http.server import ThreadingHTTPServer


class LocalHTTPServer:
    """Subclasses give ``_handler_class()`` (a BaseHTTPRequestHandler bound to themselves) and a
    ``thread_name``; use as a context manager, with ``url`` as the service's base URL."""

    thread_name = "fake-http"

    def __init__(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.thread_name, daemon=True)

    def _handler_class(self):
        raise NotImplementedError

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
