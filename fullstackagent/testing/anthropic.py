"""A local stand-in for the Anthropic Messages API (`POST /v1/messages`, streamed), enough to drive the
real Claude Code CLI end to end with no network.

The script: the first agent request (one that offers tools) is answered with one `Write` tool call
(``file_path``, ``content``); the request that carries its tool_result is answered with ``final_text``.
Side requests (titles, topic checks: no tools offered) get a short text. Every request is kept in
``requests`` (headers and JSON body) so a test can assert what the agent sent.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler

from fullstackagent.testing.http import LocalHTTPServer


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _message_events(model: str, blocks: list[dict], stop_reason: str) -> bytes:
    """The stream of one assistant message, as the Messages API sends it."""
    out = _sse("message_start", {"type": "message_start", "message": {
        "id": "msg_stub", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1}}})
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            out += _sse("content_block_start", {"type": "content_block_start", "index": index,
                                                 "content_block": {"type": "text", "text": ""}})
            out += _sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                                 "delta": {"type": "text_delta", "text": block["text"]}})
        else:
            out += _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
            out += _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
        out += _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    out += _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                  "usage": {"output_tokens": 20}})
    out += _sse("message_stop", {"type": "message_stop"})
    return out


class FakeAnthropic(LocalHTTPServer):
    thread_name = "fake-anthropic"

    def __init__(self, *, file_path: str, content: str, final_text: str):
        self.file_path, self.content, self.final_text = file_path, content, final_text
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        super().__init__()

    def agent_requests(self) -> list[dict]:
        with self._lock:
            return [request for request in self.requests if request["body"].get("tools")]

    def _answer(self, body: dict) -> tuple[list[dict], str]:
        if not body.get("tools"):
            return [{"type": "text", "text": "Stub title"}], "end_turn"
        for message in body.get("messages", []):
            content = message.get("content")
            if isinstance(content, list) and any(part.get("type") == "tool_result" for part in content):
                return [{"type": "text", "text": self.final_text}], "end_turn"
        tool = {"type": "tool_use", "id": "toolu_stub_write", "name": "Write",
                "input": {"file_path": self.file_path, "content": self.content}}
        return [tool], "tool_use"

    def _handler_class(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                with stub._lock:
                    stub.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if not self.path.startswith("/v1/messages") or self.path.startswith("/v1/messages/count_tokens"):
                    payload = json.dumps({"input_tokens": 10}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                blocks, stop_reason = stub._answer(body)
                payload = _message_events(body.get("model", "stub-model"), blocks, stop_reason)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                payload = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
