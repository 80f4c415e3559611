"""The project list costs the same number of queries for one project as for thirty; one project is
read with its sandbox and database in one query (one-to-one relations, joined by the ORM)."""

import pytest
from django.db import IntegrityError, transaction

from databases.models import Database
from projects import services
from sandboxes.models import Sandbox


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


def test_api_project_detail_reads_the_project_with_its_sandbox_and_database_in_one_query(
    api, user, django_assert_num_queries
):
    project = services.do_create_project(user, name="One Query")

    # session + user (authentication), then the project joined with its sandbox and database
    with django_assert_num_queries(3) as captured:
        response = api.get(f"/api/projects/{project.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["sandbox"]["id"] == project.sandbox.pk and body["database"]["id"] == project.database.pk
    joined = captured.captured_queries[-1]["sql"]
    assert "sandboxes_sandbox" in joined and "databases_database" in joined
    # The database's connection URL is never loaded (nor decrypted) to show a project.
    assert "connection_url" not in joined


def test_a_project_has_at_most_one_sandbox_and_one_database(user):
    project = services.do_create_project(user, name="Only One")
    for model in (Sandbox, Database):
        with pytest.raises(IntegrityError), transaction.atomic():
            model.objects.create(project=project, name=f"second-{model.__name__.lower()}")
    assert project.sandbox.project_id == project.database.project_id == project.pk
