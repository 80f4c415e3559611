"""Issue 14, finding 7: an open terminal closes when its user may no longer use it.

It kept working after its user signed out. Now the consumer checks every TERMINAL_RECHECK_SECONDS
(a tenth of a second here) and closes with the code the page explains: 4401 ("Your session has
ended. Sign in again") after a sign-out or a password change, 4404 ("This project does not exist
or is not yours") when the project is no longer the user's.
"""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from projects.models import Project
from sandboxes import terminal
from sandboxes.models import TerminalSession
from tests.terminal.conftest import PROMPT, read_until, run, session_cookie, terminal_communicator


@pytest.fixture(autouse=True)
def quick_rechecks(settings):
    settings.TERMINAL_RECHECK_SECONDS = 0.1


async def open_terminal(communicator):
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(bytes_data=b'{"columns": 80, "rows": 24}')
    await read_until(communicator, PROMPT)


async def close_code(communicator, timeout: float = 10.0) -> int:
    """Reads until the server closes the socket; its code."""
    while True:
        message = await communicator.receive_output(timeout)
        if message["type"] == "websocket.close":
            await communicator.wait(5)
            return message["code"]


def sign_out(cookie: str) -> int:
    client = Client()
    client.cookies["sessionid"] = cookie
    return client.post("/accounts/logout/").status_code


def change_password(user) -> None:
    user.set_password("a-new-horse-battery")
    user.save()


def test_signing_out_closes_the_open_terminal_with_4401(running_project, user):
    cookie = session_cookie(user)
    communicator = terminal_communicator(running_project.pk, cookie=cookie)

    async def session():
        await open_terminal(communicator)
        assert await sync_to_async(sign_out)(cookie) == 302
        return await close_code(communicator)

    assert run(session()) == 4401
    assert TerminalSession.objects.get().close_code == 4401


def test_a_password_change_closes_the_open_terminal_with_4401(running_project, user):
    communicator = terminal_communicator(running_project.pk, cookie=session_cookie(user))

    async def session():
        await open_terminal(communicator)
        await sync_to_async(change_password)(user)
        return await close_code(communicator)

    assert run(session()) == 4401


def test_a_project_that_is_no_longer_the_users_closes_with_4404(running_project, user, other_user):
    communicator = terminal_communicator(running_project.pk, cookie=session_cookie(user))

    async def session():
        await open_terminal(communicator)
        await sync_to_async(Project.objects.filter(pk=running_project.pk).update)(user=other_user)
        return await close_code(communicator)

    assert run(session()) == 4404
    assert TerminalSession.objects.get().close_code == 4404


def test_nothing_changed_the_terminal_stays_open_across_rechecks(running_project, user, monkeypatch):
    checks = []
    real_check = terminal.terminal_lapsed

    def counting_check(*args):
        result = real_check(*args)
        checks.append(result)
        return result

    monkeypatch.setattr(terminal, "terminal_lapsed", counting_check)
    communicator = terminal_communicator(running_project.pk, cookie=session_cookie(user))

    async def session():
        await open_terminal(communicator)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(checks) < 5 and loop.time() < deadline:
            # Polls the count, yielding to the consumer meanwhile (receive_nothing returns at once
            # without yielding when output is queued: that loop starved the relay of ttyd's pings).
            await asyncio.sleep(0.05)
        await communicator.send_to(bytes_data=b"0echo still-$((20+1))\r")
        output, _ = await read_until(communicator, "still-21")
        await communicator.disconnect(code=1000, timeout=5)
        return output

    assert "still-21" in run(session())
    assert len(checks) >= 5 and set(checks) == {None}


def test_an_api_token_cannot_open_a_terminal(running_project, user):
    from identities.tokens import do_create_api_token

    _, token = do_create_api_token(user, name="cli")
    communicator = terminal_communicator(running_project.pk)
    communicator.scope["headers"].append((b"authorization", f"Bearer {token}".encode()))

    async def session():
        connected, _ = await communicator.connect()
        assert connected
        return await close_code(communicator, 5)

    assert run(session()) == 4401
