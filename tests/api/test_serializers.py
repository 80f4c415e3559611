"""ProjectSerializer builds its output directly; DRF's field-by-field path over the same declared
fields (which the OpenAPI schema documents) must give exactly the same JSON."""

from rest_framework import serializers

from databases.models import Database
from projects import selectors, services
from projects.serializers import ProjectSerializer
from sandboxes.models import Sandbox


def _through_fields(project) -> dict:
    return serializers.Serializer.to_representation(ProjectSerializer(), project)


def test_list_entries_match_the_declared_fields(user):
    services.do_create_project(user, name="My Blog", description="boats")
    second = services.do_create_project(user, name="Shop")
    Sandbox.objects.filter(project=second).update(status="RUNNING", public_url="https://shop.example.test", last_error="x")

    projects = selectors.project_list(user)

    assert [ProjectSerializer(project).data for project in projects] == [_through_fields(p) for p in projects]
    first = ProjectSerializer(projects[0]).data
    assert first["sandbox"]["publicUrl"] == "https://shop.example.test"
    assert first["sandbox"]["lastError"] == "x"
    assert first["createdAt"].endswith("Z")
    assert set(first) == set(ProjectSerializer().fields)


def test_one_project_and_missing_resources_match_the_declared_fields(user):
    project = services.do_create_project(user, name="Lonely")
    Database.objects.filter(project=project).delete()

    detail = selectors.owned_project(user, project.pk)
    listed = selectors.project_list(user)[0]

    assert ProjectSerializer(detail).data == _through_fields(detail)
    assert ProjectSerializer(listed).data == _through_fields(listed)
    assert ProjectSerializer(listed).data["database"] is None
    assert ProjectSerializer(listed).data == ProjectSerializer(detail).data


def test_create_answers_what_the_detail_then_shows(api):
    created = api.post("/api/projects", {"name": "Fresh App"}, format="json")

    assert created.status_code == 201
    detail = api.get(f"/api/projects/{created.json()['id']}")
    assert created.json() == detail.json()
    assert created.json()["sandbox"]["status"] == "CREATING"
    assert created.json()["allowedActions"] == ["delete", "stop"]  # stop while creating: issue 13
