"""The terminal a sandbox serves: real ttyd from the entrypoint, real tmux, a websocket client.

A shell's output arrives through tmux, which redraws the screen with escape sequences
and shows a clock in its status line; assertions look for text only the command can
produce, on a line of its own.
"""

import os
import re
import signal
import time

import pytest
from websockets.exceptions import InvalidMessage, InvalidStatus

ANSWER = r"(?m)^42\s*$"  # `echo $((6*7))` printed 42; the typed command does not contain it


def test_terminal_with_the_token_gets_a_shell(make_sandbox):
    sandbox = make_sandbox()
    sandbox.start()

    terminal = sandbox.terminal()
    terminal.read_until("demo:")  # the seeded .bashrc ran: a login shell reads .profile -> .bashrc
    terminal.type("echo $((6*7))\r")
    terminal.read_until(ANSWER)
    terminal.type('echo "token:${TTYD_ACCESS_TOKEN:-absent}"\r')
    screen = terminal.read_until(r"(?m)^token:\w+$")

    assert "token:absent" in screen
    assert sandbox.token not in screen
    terminal.close()


@pytest.mark.parametrize(
    ("header_token", "auth_token"),
    [
        ("right", "wrong"),  # upgrade accepted, first message carries the wrong token
        ("right", None),  # upgrade accepted, first message has no AuthToken at all
    ],
)
def test_terminal_with_a_wrong_or_missing_auth_token_is_closed_before_any_process(
    make_sandbox, header_token, auth_token
):
    sandbox = make_sandbox()
    sandbox.start()
    ttyd_pid = sandbox.ttyd_pid()
    tokens = {"right": sandbox.token, "wrong": "w" * 40, None: None}
    assert sandbox.children() == []

    terminal = sandbox.terminal(header_token=tokens[header_token], auth_token=tokens[auth_token])
    close_code = terminal.wait_closed()
    time.sleep(0.2)

    assert close_code == 1008  # policy violation
    assert terminal.raw == b""
    assert sandbox.children() == []
    # Control: the same check does see the process a good connection spawns.
    good = sandbox.terminal()
    good.read_until("demo:")
    assert len(sandbox.children()) == 1
    good.close()
    assert ttyd_pid == sandbox.ttyd_pid()  # the same ttyd all along: refusals did not crash it


@pytest.mark.parametrize("header_token", [None, "w" * 40])
def test_terminal_without_the_basic_credential_is_refused_at_the_handshake(make_sandbox, header_token):
    sandbox = make_sandbox()
    sandbox.start()

    with pytest.raises((InvalidMessage, InvalidStatus)):
        sandbox.terminal(header_token=header_token, auth_token=sandbox.token)
    time.sleep(0.2)

    assert sandbox.children() == []


def test_reconnect_returns_to_the_same_tmux_session_with_its_scrollback(make_sandbox):
    sandbox = make_sandbox()
    sandbox.start()

    first = sandbox.terminal(session="work")
    first.read_until("demo:")
    first.type("export MARK=xyz; for i in $(seq 1 200); do echo line-$i; done\r")
    first.read_until(r"(?m)^line-200\s*$")
    first.close()
    time.sleep(0.2)  # ttyd hangs up the tmux client; the session must outlive it

    second = sandbox.terminal(session="work")
    second.type('echo "mark=$MARK"\r')
    second.read_until(r"(?m)^mark=xyz\s*$")

    assert sandbox.tmux("list-sessions", "-F", "#{session_name}").stdout == "work\n"
    assert sandbox.tmux("show-options", "-gv", "history-limit").stdout == "10000\n"
    history = sandbox.tmux("capture-pane", "-p", "-S", "-", "-t", "=work:").stdout.splitlines()
    # 200 lines do not fit a 30-row screen: the early ones are tmux's scrollback.
    assert [line for line in history if line.startswith("line-")] == [f"line-{i}" for i in range(1, 201)]
    second.close()


def output_within(terminal, seconds):
    """The output frames' bytes a terminal receives in the next ``seconds``."""
    received = b""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            frame = terminal.ws.recv(timeout=remaining)
        except TimeoutError:
            break
        if isinstance(frame, bytes) and frame[:1] == b"0":
            received += frame[1:]
    return received


def test_a_new_terminal_does_not_redraw_the_ones_already_open(make_sandbox):
    """Each new terminal used to set tmux's global options, and tmux redraws every attached client
    when one changes: with N tabs open, a new one sent N whole screens. The options come from the
    tmux server's configuration now, read once."""
    sandbox = make_sandbox()
    sandbox.start()
    first = sandbox.terminal(session="first")
    first.read_until("demo:")
    output_within(first, 2.0)  # whatever the first screen still had to say

    second = sandbox.terminal(session="second")
    second.read_until("demo:")
    third = sandbox.terminal(session="third")
    third.read_until("demo:")

    redrawn = output_within(first, 1.0)
    # The screen is not sent again (it was, once per new terminal); tmux still refreshes the
    # status line (its last row, about 150 bytes) when a session is created.
    assert b"Welcome" not in redrawn and len(redrawn) < 400, redrawn
    assert sandbox.tmux("show-options", "-gv", "status-interval").stdout == "0\n"
    assert sandbox.tmux("show-options", "-gv", "history-limit").stdout == "10000\n"
    for terminal in (first, second, third):
        terminal.close()


@pytest.mark.parametrize("session", ["bad;name", "a" * 33, "x y"])
def test_terminal_refuses_a_session_name_outside_the_allowed_characters(make_sandbox, session):
    sandbox = make_sandbox()
    sandbox.start()

    terminal = sandbox.terminal(session=session.replace(" ", "%20").replace(";", "%3B"))
    close_code = terminal.wait_closed()
    time.sleep(0.2)

    assert terminal.screen_text() == "terminal-session: session names are 1 to 32 of A-Z a-z 0-9 _ -\n"
    assert close_code == 1006  # ttyd's code for a command that exited non-zero
    assert sandbox.tmux("list-sessions").returncode == 1  # no tmux server was started
    assert sandbox.children() == []


def test_claude_code_starts_in_the_first_terminal_only(make_sandbox, fake_claude):
    claude, invocations = fake_claude
    prompt = 'Build the app with "Next.js" & keep $HOME literal; it\'s fine'
    sandbox = make_sandbox()
    sandbox.env.update(
        CLAUDE_BIN=str(claude), ANTHROPIC_AUTH_TOKEN="sk-test", FULLSTACKAGENT_SYSTEM_PROMPT=prompt
    )
    # A marker left by the previous life of this container (`docker restart` keeps /tmp).
    sandbox.run_dir.mkdir()
    (sandbox.run_dir / "fullstackagent-claude-started").touch()
    sandbox.start()

    first = sandbox.terminal()
    first.read_until("demo:")  # claude exited; the login shell took over in the same pane
    first.type("echo $((6*7))\r")
    first.read_until(ANSWER)
    second = sandbox.terminal(session="second")
    second.type("echo $((6*7))\r")
    second.read_until(ANSWER)
    first.close()
    again = sandbox.terminal()  # reattaching to `main` does not start it again
    again.type("echo $((6*7))\r")
    again.read_until(ANSWER)

    assert invocations() == [["--append-system-prompt", prompt]]
    assert (sandbox.run_dir / "fullstackagent-claude-started").exists()
    second.close()
    again.close()


def test_claude_code_does_not_start_without_an_anthropic_key(make_sandbox, fake_claude):
    claude, invocations = fake_claude
    sandbox = make_sandbox()
    sandbox.env.update(CLAUDE_BIN=str(claude), FULLSTACKAGENT_SYSTEM_PROMPT="anything")
    sandbox.start()

    terminal = sandbox.terminal()
    # Instead of the agent, the first terminal says where to set the key, then gives a shell.
    terminal.read_until("Settings -> Anthropic")
    terminal.type("echo $((6*7))\r")
    terminal.read_until(ANSWER)

    assert invocations() == []
    terminal.close()


def test_terminal_without_tmux_falls_back_to_a_login_shell(make_sandbox, fake_claude):
    claude, invocations = fake_claude
    sandbox = make_sandbox()
    sandbox.env.update(TMUX_BIN=str(sandbox.root / "no-tmux-here"), CLAUDE_BIN=str(claude), ANTHROPIC_API_KEY="sk-test")
    sandbox.start()

    first = sandbox.terminal()
    first.read_until("demo:")
    first.type("echo $((6*7))\r")
    first.read_until(ANSWER)
    second = sandbox.terminal()
    second.type("echo $((6*7))\r")
    second.read_until(ANSWER)

    assert invocations() == [[]]  # no prompt configured: no --append-system-prompt either
    assert sandbox.tmux("list-sessions").returncode == 1
    assert len(sandbox.children()) == 2  # one plain shell per connection
    first.close()
    second.close()


def test_a_crashed_ttyd_is_started_again_and_the_tmux_session_lives_on(make_sandbox):
    sandbox = make_sandbox()
    sandbox.start()
    first = sandbox.terminal(session="work")
    first.read_until("demo:")
    first.type("KEEP=kept-$((40+2)); sleep 600 & echo bg=$!; echo before-crash\r")
    background = int(re.search(r"bg=(\d+)", first.read_until(r"(?m)^before-crash\s*$")).group(1))
    crashed = sandbox.ttyd_pid()

    os.kill(crashed, signal.SIGKILL)

    assert first.wait_closed() is not None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if sandbox.ttyd_pid() != crashed:
                break
        except AssertionError:  # between the crash and the new ttyd
            pass
        time.sleep(0.02)
    again = None
    while again is None and time.monotonic() < deadline:
        try:
            again = sandbox.terminal(session="work")
        except OSError:  # the new ttyd is not listening yet
            time.sleep(0.05)
    again.read_until(r"(?m)^before-crash\s*$")  # the screen as it was
    again.type(f"echo $KEEP; kill -0 {background} && echo still-running\r")
    again.read_until(r"(?m)^still-running\s*$")

    assert "kept-42" in again.screen_text()
    assert sandbox.process.poll() is None  # the entrypoint lives on
    assert "ttyd exited (status" in sandbox.log.read_text()
    again.close()
