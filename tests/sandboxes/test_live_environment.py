"""Environment changes reach a running local sandbox without a restart: new shells and tmux windows see
the new variables (and no longer the removed ones) while open terminals, their shell variables and
background processes go on; the explicit restart is what ends them."""

import json
import re

from asgiref.sync import sync_to_async

from databases.models import Database
from fullstackagent.status import ResourceStatus
from projects import services
from projects.models import Project
from projects.tasks import reconcile_sandbox
from sandboxes.backends import get_sandbox_backend
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec
from tests.terminal.conftest import PROMPT, read_until, run, session_cookie, terminal_communicator


def converge(sandbox_pk, steps=4):
    for _ in range(steps):
        reconcile_sandbox(sandbox_pk)
        row = Sandbox.objects.get(pk=sandbox_pk)
        if row.status == ResourceStatus.RUNNING and row.applied_environment_hash == build_spec(row).environment_hash:
            return row
    raise AssertionError(f"the sandbox did not converge: {row.status} {row.last_error}")


class Terminal:
    """A browser-like terminal through the relay, kept open across steps."""

    def __init__(self, project, cookie, session):
        self.communicator = terminal_communicator(project.pk, cookie=cookie, session=session)

    async def open(self):
        connected, _ = await self.communicator.connect()
        assert connected
        await self.communicator.send_to(bytes_data=json.dumps({"columns": 200, "rows": 40}).encode())
        await read_until(self.communicator, PROMPT)

    async def run(self, command, expect):
        await self.communicator.send_to(bytes_data=b"0" + command.encode() + b"\r")
        output, _ = await read_until(self.communicator, expect)
        return output


def test_a_saved_variable_reaches_new_shells_and_the_open_one_keeps_its_work(make_isolated_project, user):
    project = make_isolated_project(user, "Live Env")
    services.do_set_variables(project, [{"key": "GREETING", "value": "hello"}, {"key": "DOOMED", "value": "soon gone"}])
    # Restarted, so both are in the environment the sandbox's processes start with: removing one
    # must unset it in new shells, not only leave it out of the folder.
    converge(Sandbox.objects.get(project=project).pk)
    services.do_restart_project(Project.objects.get(pk=project.pk))
    sandbox = converge(Sandbox.objects.get(project=project).pk)
    backend = get_sandbox_backend()
    spec = build_spec(sandbox)
    sandbox_pid = int((backend.run_dir(spec) / "sandbox.pid").read_text())
    cookie = session_cookie(user)

    async def scenario():
        open_tab = Terminal(project, cookie, "work")
        await open_tab.open()
        output = await open_tab.run('MINE=kept; sleep 900 & echo "bg=$! greeting=[$GREETING]"', r"bg=\d+ greeting=\[\w*\]")
        background = int(re.search(r"bg=(\d+)", output).group(1))
        assert "greeting=[hello]" in output
        launched = await open_tab.run('echo "launch=[$(cat /tmp/environment-keys | tr "\\n" " ")] doomed=[$DOOMED]"', r"launch=\[[A-Z_ ]*\] doomed=\[[a-z ]+\]")
        assert "DOOMED" in launched.split("launch=[")[-1] and "doomed=[soon gone]" in launched

        # The user changes the environment while the tab is open.
        await _sync(services.do_set_variables, project, [{"key": "GREETING", "value": "bonjour"}, {"key": "NEW_ONE", "value": "fresh"}])
        await _sync(services.do_delete_variable, project, "DOOMED")
        await _sync(converge, sandbox.pk)

        # The open tab keeps its shell, its variable, its background process and its old value...
        kept = await open_tab.run(f'echo "mine=[$MINE] greeting=[$GREETING]"; kill -0 {background} && echo alive', r"\nalive")
        assert "mine=[kept] greeting=[hello]" in kept
        # ...a new tmux window of the same session reads the new environment...
        window = await open_tab.run(
            "tmux new-window -d -n probe; "
            """tmux send-keys -t probe 'echo "greeting=[$GREETING] new=[$NEW_ONE] doomed=[$DOOMED]" > /tmp/probe' Enter; """
            "until [ -s /tmp/probe ]; do sleep 0.05; done; cat /tmp/probe",
            r"greeting=\[\w*\] new=\[\w*\] doomed=\[[^\]$]*\]",
        )
        # ...and so does a new tab.
        new_tab = Terminal(project, cookie, "other")
        await new_tab.open()
        fresh = await new_tab.run('echo "greeting=[$GREETING] new=[$NEW_ONE] doomed=[$DOOMED]"', r"greeting=\[\w+\] new=\[\w*\] doomed=\[[^\]]*\]\n")
        await new_tab.communicator.disconnect()
        await open_tab.communicator.disconnect()
        return window, fresh

    window, fresh = run(scenario())

    assert "greeting=[bonjour] new=[fresh] doomed=[]" in window
    assert "greeting=[bonjour] new=[fresh] doomed=[]" in fresh
    # Nothing was restarted: the same sandbox process, the secret terminal token in no file shells read.
    assert int((backend.run_dir(spec) / "sandbox.pid").read_text()) == sandbox_pid
    assert sorted(path.name for path in backend.environment_dir(spec).iterdir()) == sorted(
        key for key in build_spec(Sandbox.objects.get(pk=sandbox.pk)).environment if key != "TTYD_ACCESS_TOKEN"
    )
    # The app's port is the sandbox's own (all local sandboxes share the host's network), not 3000.
    assert (backend.environment_dir(spec) / "PORT").read_text() == str(backend.app_port(spec))
    assert Database.objects.get(project=project).status == ResourceStatus.RUNNING


def test_the_explicit_restart_ends_every_process_and_starts_again(make_isolated_project, user):
    project = make_isolated_project(user, "Restart Me")
    sandbox = Sandbox.objects.get(project=project)
    backend = get_sandbox_backend()
    spec = build_spec(sandbox)
    before = int((backend.run_dir(spec) / "sandbox.pid").read_text())

    services.do_restart_project(Project.objects.get(pk=project.pk))
    sandbox = converge(sandbox.pk)

    after = int((backend.run_dir(spec) / "sandbox.pid").read_text())
    assert after != before
    assert before not in backend.processes(spec)
    assert (sandbox.status, sandbox.restart_requested) == (ResourceStatus.RUNNING, False)
    assert Project.objects.get(pk=project.pk).status == "RUNNING"


async def _sync(function, *args):
    return await sync_to_async(function)(*args)
