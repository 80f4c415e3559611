"""A fake Aiproxy key hub for tests and local demos: a real HTTP server on 127.0.0.1.

    with FakeKeyHub() as keyhub:               # settings.AIPROXY_ENDPOINT = keyhub.url
        keyhub.answers_with_key("sk-aiproxy-1")  # or .answers_code(500), .hangs(2.0), .answers_raw(b"...")

``POST /api/keyhub`` answers as configured and records each request (headers and JSON body).
"""

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from fullstackagent.testing.http import LocalHTTPServer


@dataclass
class KeyHubRequest:
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


class FakeKeyHub(LocalHTTPServer):
    thread_name = "fake-keyhub"

    def __init__(self):
        self.requests: list[KeyHubRequest] = []
        self._answer = ("key", "sk-aiproxy-default")
        self._stop = threading.Event()
        super().__init__()

    def __exit__(self, *exc):
        self._stop.set()  # releases a hanging handler
        super().__exit__(*exc)

    def answers_with_key(self, key: str) -> None:
        self._answer = ("key", key)

    def answers_code(self, code: int, message: str = "token quota exceeded") -> None:
        """HTTP 200 with Aiproxy's own error envelope ({code, message})."""
        self._answer = ("code", (code, message))

    def answers_http_status(self, status: int) -> None:
        self._answer = ("status", status)

    def answers_raw(self, body: bytes) -> None:
        self._answer = ("raw", body)

    def hangs(self, seconds: float) -> None:
        """Accepts the request and answers nothing for ``seconds``."""
        self._answer = ("hang", seconds)

    def _handler_class(self):
        keyhub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                keyhub.requests.append(KeyHubRequest(self.path, dict(self.headers.items()), body))
                if self.path != "/api/keyhub":
                    return self._send(404, b'{"code":404,"message":"not found"}')
                kind, value = keyhub._answer
                if kind == "hang":
                    keyhub._stop.wait(value)
                    try:
                        self._send(200, json.dumps({"code": 200, "data": {"key": "sk-too-late"}}).encode())
                    except OSError:
                        pass  # the client gave up long ago
                    return
                if kind == "key":
                    name = json.loads(body).get("name", "")
                    return self._send(200, json.dumps({"code": 200, "data": {"key": value, "name": name, "id": 7}}).encode())
                if kind == "code":
                    code, message = value
                    return self._send(200, json.dumps({"code": code, "message": message}).encode())
                if kind == "status":
                    return self._send(value, b'{"code":500,"message":"internal error"}')
                return self._send(200, value, "text/html")

        return Handler
