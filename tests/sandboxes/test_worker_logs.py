"""The worker's log says what changed (status transitions), not every task it ran: `make run` prints it
to the terminal the user started the platform from."""

import re

from fullstackagent.status import ProjectStatus
from projects import services
from sandboxes.backends import get_sandbox_backend
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec


def test_the_worker_logs_transitions_and_not_every_task(celery_worker, user, wait_for_status):
    project = services.do_create_project(user, name="Quiet Logs")
    wait_for_status(project, ProjectStatus.RUNNING)
    sandbox = Sandbox.objects.get(project=project)
    try:
        log = celery_worker.output()
    finally:
        get_sandbox_backend().delete(build_spec(sandbox))

    assert re.search(rf"sandbox {sandbox.name}: (CREATING|STARTING) -> RUNNING", log), log[-3000:]
    assert " received" not in log
    assert " succeeded in " not in log
    assert "Sending due task" not in log
