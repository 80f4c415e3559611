"""The coding agent in a local sandbox, end to end: the user's Anthropic settings saved on the Settings
page reach the real Claude Code CLI inside the isolated sandbox, which talks to a local stand-in of the
Messages API, writes the file it is told to, and answers in the terminal the user has open."""

import json
import re

from django.test import Client

from fullstackagent.testing.anthropic import FakeAnthropic
from sandboxes.backends import get_sandbox_backend
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec
from tests.sandboxes.conftest import terminal
from tests.terminal.conftest import read_until, run, session_cookie, terminal_communicator

KEY = "sk-ant-test-0123456789abcdefghij"
MODEL = "claude-stub-model"
SYSTEM_PROMPT = "You build apps for FullstackAgent users. Marker: SYSPROMPT-4711."
FINAL_TEXT = "AGENT-FINISHED: index.html is ready."
PAGE = "<h1>Built by the agent</h1>\n"


def loose(text: str) -> str:
    """A regex for ``text`` as a full-screen program draws it: spaces may be cursor moves instead."""
    return r"\s*".join(re.escape(word) for word in text.split())


def test_the_agent_writes_the_users_app_in_the_sandbox(make_isolated_project, user):
    with FakeAnthropic(file_path="/home/agent/index.html", content=PAGE, final_text=FINAL_TEXT) as anthropic:
        # Given the user's Anthropic settings and system prompt, saved where a user saves them.
        client = Client()
        client.force_login(user)
        response = client.post("/settings/anthropic/", {
            "base_url": anthropic.url, "api_key": KEY, "model": MODEL, "small_fast_model": MODEL,
        })
        assert response.status_code == 302
        assert client.post("/settings/system-prompt/", {"system_prompt": SYSTEM_PROMPT}).status_code == 302
        project = make_isolated_project(user, "Agent Shop")

        # When the user opens the first terminal and gives the agent a task.
        cookie = session_cookie(user)

        async def session():
            communicator = terminal_communicator(project.pk, cookie=cookie)
            connected, _ = await communicator.connect()
            assert connected
            await communicator.send_to(bytes_data=json.dumps({"columns": 160, "rows": 40}).encode())
            try:
                # The agent, not a shell, answers the first terminal: its input box and mode line.
                await read_until(communicator, r"auto\s*mode\s*on", timeout=60)
                await communicator.send_to(bytes_data=b"0Make an index page for my shop")
                await read_until(communicator, loose("index page for my shop"), timeout=10)
                await communicator.send_to(bytes_data=b"0\r")
                output, _ = await read_until(communicator, loose(FINAL_TEXT), timeout=90)
                return output
            finally:
                await communicator.disconnect()

        output = run(session())

    # Then the file is in the workspace, the answer in the terminal...
    workspace = get_sandbox_backend().workspace(build_spec(Sandbox.objects.get(project=project)))
    assert (workspace / "index.html").read_text() == PAGE
    assert re.search(loose(FINAL_TEXT), output)
    # ...and the model API saw the user's key, model and system prompt.
    requests = anthropic.agent_requests()
    assert len(requests) >= 2  # the tool call, then the answer to its result
    for request in requests:
        assert request["headers"]["Authorization"] == f"Bearer {KEY}"
        assert request["body"]["model"] == MODEL
        system = request["body"]["system"]
        system_text = system if isinstance(system, str) else " ".join(part.get("text", "") for part in system)
        assert SYSTEM_PROMPT in system_text


def test_without_a_key_the_first_terminal_says_how_to_get_the_agent(make_isolated_project, user, settings):
    settings.PUBLIC_URL = "http://platform.test"
    project = make_isolated_project(user, "No Key Yet")

    cookie = session_cookie(user)

    async def session():
        communicator = terminal_communicator(project.pk, cookie=cookie)
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_to(bytes_data=json.dumps({"columns": 160, "rows": 40}).encode())
        try:
            output, _ = await read_until(communicator, r"run\s+claude[\s\S]*[$#] ", timeout=20)
            return output
        finally:
            await communicator.disconnect()

    output = run(session())

    assert "Welcome to your FullstackAgent sandbox for No Key Yet." in output
    assert "Claude Code (claude)" in output
    assert "Start your app on port $PORT" in output
    assert "Settings -> Anthropic:" in output
    assert "http://platform.test/settings/?tab=anthropic" in output
    # The agent's tools are there all the same, and git and node work in the isolated home.
    [(versions, code)] = terminal(project, user, [
        "claude --version && node --version && git --version && psql --version && git init -q ~/repo && echo ok-git"
    ])
    assert code == 0
    assert re.search(r"^2\.\d+\.\d+ \(Claude Code\)", versions, re.M)
    assert "ok-git" in versions
