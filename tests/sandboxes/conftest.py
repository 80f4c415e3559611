import json
import re

import pytest

from databases.backends.local import LocalDatabaseBackend
from databases.models import Database
from databases.reconcile import build_spec as build_database_spec
from fullstackagent.status import ProjectStatus, ResourceStatus
from fullstackagent.testing.processes import wait_for
from projects import services
from projects.models import Project
from sandboxes.backends import get_sandbox_backend
from sandboxes.backends.base import SandboxPhase
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec
from tests.terminal.conftest import PROMPT, read_until, run, session_cookie, terminal_communicator


@pytest.fixture
def wait_for_status():
    def wait(project, status, timeout=20.0):
        def reached():
            current = Project.objects.get(pk=project.pk).status
            if current == ProjectStatus.ERROR and status != ProjectStatus.ERROR:
                from sandboxes.models import Sandbox
                from databases.models import Database

                errors = list(Sandbox.objects.filter(project=project).values_list("last_error", flat=True))
                errors += list(Database.objects.filter(project=project).values_list("last_error", flat=True))
                pytest.fail(f"project went to ERROR: {errors}")
            return current == status

        wait_for(reached, timeout=timeout, message=f"project {project.pk} to be {status}")
        return Project.objects.get(pk=project.pk)

    return wait


@pytest.fixture
def make_isolated_project(transactional_db):
    """A project with its real local database and its sandbox RUNNING (backends called directly)."""
    started = []

    def make(user, name):
        project = services.do_create_project(user, name=name)
        database = Database.objects.get(project=project)
        observation = LocalDatabaseBackend().create(build_database_spec(database))
        Database.objects.filter(pk=database.pk).update(
            status=ResourceStatus.RUNNING, connection_url=observation.connection_url
        )
        sandbox = Sandbox.objects.get(project=project)
        sandbox_observation = get_sandbox_backend().create(build_spec(sandbox))
        assert sandbox_observation.phase == SandboxPhase.RUNNING, sandbox_observation
        Sandbox.objects.filter(pk=sandbox.pk).update(
            status=ResourceStatus.RUNNING, applied_environment_hash=sandbox_observation.applied_environment_hash
        )
        services.refresh_project_status(project.pk)
        started.append(project)
        return Project.objects.get(pk=project.pk)

    yield make
    for project in started:
        get_sandbox_backend().delete(build_spec(Sandbox.objects.get(project=project)))
        LocalDatabaseBackend().delete(build_database_spec(Database.objects.get(project=project)))


def terminal(project, user, commands: list[str], timeout: float = 20.0) -> list[tuple[str, int]]:
    """Types each command into the project's terminal through the relay; returns (output, exit code)
    per command, the output being what the command printed."""

    cookie = session_cookie(user)

    async def go():
        communicator = terminal_communicator(project.pk, cookie=cookie, session="escape")
        connected, _ = await communicator.connect()
        assert connected
        # ttyd's first frame: the terminal size; wide, so no line of output wraps.
        await communicator.send_to(bytes_data=json.dumps({"columns": 250, "rows": 50}).encode())
        results = []
        try:
            await read_until(communicator, PROMPT, timeout=timeout)
            for number, command in enumerate(commands):
                marker = f"END{number}"
                # The marker is split in the typed line (E""ND) so only the printed one matches.
                await communicator.send_to(bytes_data=b"0" + f'{command}; echo "E""ND{number} $?"\r'.encode())
                output, _ = await read_until(communicator, rf"{marker} (\d+)", timeout=timeout)
                results.append((output, int(re.findall(rf"{marker} (\d+)", output)[-1])))
        finally:
            await communicator.disconnect()
        return results

    return run(go())
