"""The terminal relay in /metrics (issue 16 §4): open relays while a terminal is open, and the bytes it
passed each way, added while it lasts (every TERMINAL_RECHECK_SECONDS) and when it closes."""

import pytest
from asgiref.sync import sync_to_async
from django.test import Client, override_settings

from tests.foundation.test_metrics import parse, value
from tests.terminal.conftest import PROMPT, read_until, run, session_cookie, terminal_communicator


def scrape() -> dict:
    # The test client's address is loopback, which DEBUG's METRICS_ALLOWED_NETWORKS lets in.
    response = Client().get("/metrics")
    assert response.status_code == 200
    return parse(response.content.decode())


@pytest.mark.django_db(transaction=True)
def test_an_open_terminal_and_its_bytes_show_in_metrics(running_project, user):
    before = scrape()
    to_browser_before = value(before, "fullstackagent_terminal_relayed_bytes_total", direction="to_browser")
    to_sandbox_before = value(before, "fullstackagent_terminal_relayed_bytes_total", direction="to_sandbox")
    assert value(before, "fullstackagent_terminals_open") == 0
    init, command = b'{"columns": 80, "rows": 24}', b"0echo $((6*7))\r"
    cookie = session_cookie(user)

    async def go():
        communicator = terminal_communicator(running_project.id, cookie=cookie)
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_to(bytes_data=init)
        _, received = await read_until(communicator, PROMPT)
        await communicator.send_to(bytes_data=command)
        _, more = await read_until(communicator, "\n42")
        # Still open: the relay adds what it passed at its next periodic check (0.1 s here).
        during = await sync_to_async(scrape)()
        for _ in range(50):
            sent = value(during, "fullstackagent_terminal_relayed_bytes_total", direction="to_sandbox")
            if sent >= to_sandbox_before + len(init) + len(command):
                break
            await communicator.receive_nothing(0.1)
            during = await sync_to_async(scrape)()
        await communicator.disconnect(code=1000, timeout=5)
        return during, received + more

    with override_settings(TERMINAL_RECHECK_SECONDS=0.1):
        during, received = run(go())
    after = scrape()

    assert value(during, "fullstackagent_terminals_open") == 1
    assert value(during, "fullstackagent_terminal_relayed_bytes_total", direction="to_sandbox") == (
        to_sandbox_before + len(init) + len(command)
    )
    assert value(after, "fullstackagent_terminals_open") == 0
    # Everything the browser got is counted once it closed (more may have come after "42").
    assert value(after, "fullstackagent_terminal_relayed_bytes_total", direction="to_browser") >= (
        to_browser_before + received
    )
    assert value(after, "fullstackagent_terminal_relayed_bytes_total", direction="to_sandbox") == (
        to_sandbox_before + len(init) + len(command)
    )
