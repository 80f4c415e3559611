"""Issue 14, finding 1: request bodies over the limit are refused with 413 before they are read.

Against the real web server (two web processes behind one port), over raw sockets: the refusal must come
as soon as the headers are in, so most tests send a Content-Length and no body at all, and read
the answer.
"""

import json
import socket
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from fullstackagent.testing.processes import PlatformServer, wait_for, wait_for_connections_to_close
from tests.foundation.test_serve import children_of, healthz

MiB = 1024 * 1024

# 512 MiB bodies pushed at the web server and its memory measured, answers awaited on 10 s sockets:
# run alone after the parallel part of `make test`, not beside three workers saturating the CPUs
# (a CI dry run once waited over 10 s for the chunked body's 413 there).
pytestmark = pytest.mark.serial


def request_head(method: str, path: str, headers: dict) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one answer; the server closes the connection after a 413."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"connection closed before an answer: {data!r}"
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin1").split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in header_lines)}
    while len(body) < int(headers.get("content-length", "0")):
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return int(status_line.split(" ")[1]), headers, body


def ask(port: int, method: str, path: str, headers: dict, body: bytes = b"") -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_head(method, path, headers) + body)
        return read_answer(sock)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def stream(sock: socket.socket, size: int, piece: bytes) -> int:
    """Sends ``piece`` after ``piece`` until ``size`` bytes or the server stops taking them; returns
    how many it took (the kernel's socket buffers hold a few MB the server never reads)."""
    sent = 0
    try:
        while sent < size:
            sock.sendall(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def push_body(port: int, path: str, length: int, headers: dict) -> int:
    """Announces ``length`` bytes and sends zeros until the server stops taking them; how many it took."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_head("POST", path, {"Content-Length": str(length), **headers}))
        return stream(sock, length, b"\0" * MiB)


@pytest.fixture(scope="module")
def web_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """One live server for the module: none of these tests changes it, and each start and stop
    costs seconds. Tests that need rows use transactional_db (committed, so the server sees them)."""
    
    server = PlatformServer(tmp_path_factory.mktemp("request-limits"))
    yield server
    server.stop()
    with django_db_blocker.unblock():
        wait_for_connections_to_close(server.application_name)


@pytest.fixture
def port(web_server):
    return web_server.port


@pytest.fixture
def signed_in_cookie(transactional_db, user):
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def test_bodies_over_the_limit_are_refused_before_they_are_read(port, signed_in_cookie):
    # One server for all the cases: each live server costs seconds to start and stop.
    anonymous = ask(port, "POST", "/healthz", {"Content-Length": str(512 * MiB)})
    signed_in_api = ask(
        port,
        "POST",
        "/api/projects",
        {"Content-Length": str(512 * MiB), "Content-Type": "application/json", "Cookie": signed_in_cookie},
    )
    expecting_continue = ask(port, "POST", "/healthz", {"Content-Length": str(3 * MiB), "Expect": "100-continue"})
    # Django answers a body at the limit (a 403: no CSRF token), not the limit.
    at_limit = ask(
        port, "POST", "/healthz", {"Content-Length": str(settings.REQUEST_BODY_MAX_BYTES)},
        b"x" * settings.REQUEST_BODY_MAX_BYTES,
    )

    status, headers, body = anonymous
    assert status == 413
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["connection"] == "close"
    assert "The request body is larger than this endpoint accepts (2 MiB); nothing was done." in body.decode()
    status, headers, body = signed_in_api
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "message": "The request body is larger than this endpoint accepts (2 MiB); nothing was done.",
        "code": "REQUEST_TOO_LARGE",
    }
    status, _, body = expecting_continue
    assert status == 413
    assert b"100 Continue" not in body
    assert at_limit[0] == 403
    assert healthz(port)[0] == 200


def test_a_chunked_body_is_cut_off_at_the_limit_and_uploads_have_their_own(port):
    over = settings.REQUEST_BODY_MAX_BYTES + 1
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            request_head("POST", "/api/projects", {"Transfer-Encoding": "chunked", "Accept": "application/json"})
            + f"{over:x}\r\n".encode()
            + b"x" * over
            + b"\r\n"
        )
        chunked_status, _, chunked_body = read_answer(sock)
    upload = "/projects/1/terminal/upload?upload=abcdefgh&name=a.bin&size=10&offset=0"
    chunk = settings.TERMINAL_UPLOAD_CHUNK_BYTES
    refused, _, refused_body = ask(port, "POST", upload, {"Content-Length": str(chunk + 1), "Accept": "application/json"})
    # Over the general limit, within the upload's: Django answers (403, no CSRF token).
    allowed, _, _ = ask(port, "POST", upload, {"Content-Length": str(chunk)}, b"x" * chunk)

    assert chunked_status == 413
    assert json.loads(chunked_body)["code"] == "REQUEST_TOO_LARGE"
    assert chunk > settings.REQUEST_BODY_MAX_BYTES
    assert refused == 413
    assert json.loads(refused_body) == {
        "message": "The request body is larger than this endpoint accepts (5 MiB); nothing was done.",
        "code": "REQUEST_TOO_LARGE",
    }
    assert allowed == 403
    assert healthz(port)[0] == 200


def test_refusing_512_mb_bodies_does_not_grow_the_web_processes(web_server, signed_in_cookie):
    port = web_server.port
    web_processes = wait_for(lambda: children_of(web_server.process.pid) if len(children_of(web_server.process.pid)) == 2 else None)
    # Warm both processes up (the first requests import and allocate what every later one reuses).
    for _ in range(20):
        assert healthz(port)[0] == 200
        ask(port, "POST", "/healthz", {"Content-Length": str(512 * MiB)})
    before = {pid: rss_bytes(pid) for pid in web_processes}

    taken = [
        push_body(port, "/healthz", 512 * MiB, {}),
        push_body(port, "/api/projects", 512 * MiB, {"Cookie": signed_in_cookie}),
        push_body(port, "/projects/1/terminal/upload", 512 * MiB, {"Cookie": signed_in_cookie}),
    ]
    growth = {pid: rss_bytes(pid) - before[pid] for pid in web_processes}

    print(f"bytes the server took of each 512 MiB body: {taken}; RSS growth per web process: {growth}")
    assert all(sent < 64 * MiB for sent in taken)  # what the kernel buffered, never the whole body
    assert max(growth.values()) < 3 * MiB
    assert healthz(port)[0] == 200


def push_header(port: int, size: int) -> tuple[int, int | None]:
    """Sends one request whose single header grows to ``size`` bytes, until the server stops
    taking it; (bytes it took, the answer's status or None)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        sent = stream(sock, size, b"a" * (64 * 1024))
        try:
            status, _, _ = read_answer(sock)
        except (AssertionError, ConnectionResetError):
            status = None  # reset before the answer could be read: the kernel dropped it
    return sent, status


def test_a_request_head_over_64_kib_is_refused_with_431_and_not_kept(web_server):
    """uvicorn keeps a request's URL and headers until they are complete, however long: one
    connection sending a 200 MiB header grew a web process by 366 MiB before the limit."""
    port = web_server.port
    web_processes = wait_for(lambda: children_of(web_server.process.pid) if len(children_of(web_server.process.pid)) == 2 else None)
    for _ in range(20):
        assert healthz(port)[0] == 200
        push_header(port, 128 * 1024)
    before = {pid: rss_bytes(pid) for pid in web_processes}

    pushed = [push_header(port, 256 * MiB) for _ in range(3)]
    growth = {pid: rss_bytes(pid) - before[pid] for pid in web_processes}

    print(f"header bytes the server took, answers: {pushed}; RSS growth per web process: {growth}")
    statuses = [status for _, status in pushed]
    assert all(sent < 64 * MiB for sent, _ in pushed)  # what the kernel buffered, never the whole header
    assert set(statuses) <= {431, None} and 431 in statuses  # None: reset before the answer was read
    assert max(growth.values()) < 3 * MiB
    assert healthz(port)[0] == 200


def test_a_complete_head_is_measured_by_its_headers(port):
    """Large cookies and tokens are fine (48 KiB of headers); a whole head over the limit sent at
    once is refused as well as one that keeps arriving."""
    def status_with_header_of(size: int) -> int:
        return ask(port, "GET", "/healthz", {"X-Big": "a" * size})[0]

    assert status_with_header_of(48 * 1024) == 200
    assert status_with_header_of(100 * 1024) == 431
    assert ask(port, "GET", "/healthz?" + "q=1&" * 20_000, {})[0] == 431  # an 80 KB URL
