"""The project list costs the same number of queries for one project as for thirty."""

import pytest

from projects import services


def _list_queries(api, django_assert_num_queries, expected):
    with django_assert_num_queries(expected):
        response = api.get("/api/projects")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("count", [1, 30])
def test_api_project_list_runs_a_constant_number_of_queries(api, user, django_assert_num_queries, count):
    for number in range(count):
        services.do_create_project(user, name=f"Project {chr(97 + number % 26)}x")

    # session + user (authentication), then the projects joined with their sandboxes and databases
    body = _list_queries(api, django_assert_num_queries, 3)

    assert len(body) == count
