import pytest

from fullstackagent.status import ProjectStatus
from projects.models import Project
from fullstackagent.testing.processes import wait_for


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
