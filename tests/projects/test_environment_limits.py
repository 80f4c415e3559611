"""Issue 14, finding 9: a project's environment stays inside what its processes can be started with.

100 variables of 32,000 bytes were accepted and then failed in the sandbox ("Argument list too
long", stuck UPDATING), and 10,000 variables were accepted. Now: at most MAX_ENVIRONMENT_VARIABLES
variables and MAX_ENVIRONMENT_TOTAL_BYTES together, refused with a 400 that changes nothing.
"""

import errno
import subprocess

import pytest
from django.contrib.messages import get_messages
from rest_framework.test import APIClient

from projects import services
from projects.models import Environment
from projects.services import MAX_ENVIRONMENT_TOTAL_BYTES, MAX_ENVIRONMENT_VARIABLES


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def project(user):
    return services.do_create_project(user, name="My Blog")


def stored(project) -> dict:
    return dict(Environment.objects.filter(project=project).values_list("key", "value"))


def post_variables(api, project, variables):
    return api.post(f"/api/projects/{project.pk}/environment", {"variables": variables}, format="json")


def test_one_hundred_values_of_32000_bytes_are_refused_and_nothing_changes(api, project):
    # All at once the body is over the request limit; in requests under it, the total stops them.
    at_once = post_variables(api, project, [{"key": f"BIG_{n}", "value": "x" * 32_000} for n in range(100)])
    first_eight = post_variables(api, project, [{"key": f"BIG_{n}", "value": "x" * 32_000} for n in range(8)])
    before = stored(project)

    ninth = post_variables(api, project, [{"key": "BIG_8", "value": "x" * 32_000}])

    assert at_once.status_code == 413
    assert first_eight.status_code == 201
    assert ninth.status_code == 400
    assert ninth.json() == {
        "message": "A project's variables take at most 256 KiB together (names and values); this would make 282 KiB. "
        "Shorten or remove some first.",
        "code": "ENVIRONMENT_TOO_LARGE",
    }
    assert stored(project) == before


def test_the_variable_after_the_last_allowed_one_is_refused(api, project):
    for start in range(0, MAX_ENVIRONMENT_VARIABLES, 100):
        response = post_variables(api, project, [{"key": f"V_{n}", "value": "1"} for n in range(start, start + 100)])
        assert response.status_code == 201
    before = stored(project)

    response = post_variables(api, project, [{"key": "ONE_MORE", "value": "1"}])

    assert response.status_code == 400
    assert response.json() == {
        "message": f"A project has at most {MAX_ENVIRONMENT_VARIABLES} variables; this would make "
        f"{MAX_ENVIRONMENT_VARIABLES + 1}. Remove some first.",
        "code": "TOO_MANY_VARIABLES",
    }
    assert stored(project) == before
    # Changing one that exists is still fine: the count stays.
    assert post_variables(api, project, [{"key": "V_0", "value": "2"}]).status_code == 201


def test_growing_one_variable_past_the_total_is_refused(api, project):
    services.do_set_variables(
        project, [*({"key": f"PART_{n}", "value": "x" * 32_000} for n in range(8)), {"key": "SMALL", "value": "s" * 5_000}]
    )
    variable = Environment.objects.get(project=project, key="SMALL")
    before = stored(project)

    response = api.put(
        f"/api/projects/{project.pk}/environment/{variable.pk}", {"value": "s" * 6_500}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "ENVIRONMENT_TOO_LARGE"
    assert stored(project) == before


def test_the_environment_page_says_why_and_saves_nothing(user_client, project):
    services.do_set_variables(project, [{"key": f"PART_{n}", "value": "x" * 30_000} for n in range(8)])
    before = stored(project)

    response = user_client.post(
        f"/projects/{project.pk}/environment/", {"new-key-0": "LAST", "new-value-0": "z" * 30_000}
    )

    assert response.status_code == 200
    assert [str(message) for message in get_messages(response.wsgi_request)] == [
        "Nothing was saved: A project's variables take at most 256 KiB together (names and values); this would make "
        "264 KiB. Shorten or remove some first."
    ]
    assert stored(project) == before


def test_an_environment_at_the_limits_can_be_executed_and_the_old_one_could_not():
    # What the limits are for: a process starts with the largest environment they allow...
    per_value = MAX_ENVIRONMENT_TOTAL_BYTES // MAX_ENVIRONMENT_VARIABLES - len("V_000=") - 1
    largest = {f"V_{n:03}": "x" * per_value for n in range(MAX_ENVIRONMENT_VARIABLES)}
    assert sum(len(k) + len(v) + 2 for k, v in largest.items()) <= MAX_ENVIRONMENT_TOTAL_BYTES
    assert subprocess.run(["/bin/true"], env=largest).returncode == 0
    # ...and the one the issue reproduced does not (E2BIG, "Argument list too long").
    reproduced = {f"BIG_{n}": "x" * 32_000 for n in range(100)}
    with pytest.raises(OSError) as raised:
        subprocess.run(["/bin/true"], env=reproduced)
    assert raised.value.errno == errno.E2BIG
