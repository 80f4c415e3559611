"""Contract of /api/projects/{id}/database and its reveal: the password only for the owner, on request."""

from databases.models import Database
from fullstackagent.status import ResourceStatus

URL = "postgresql://blog_owner:pa%3Ass%40word@db.internal:5433/blog_db"


def _ready(project, url=URL):
    Database.objects.filter(project=project).update(status=ResourceStatus.RUNNING)
    database = Database.objects.get(project=project)
    database.connection_url = url
    database.save(update_fields=["connection_url"])


def test_database_before_it_first_runs_is_unavailable(api, project):
    response = api.get(f"/api/projects/{project.pk}/database")

    assert response.status_code == 200
    assert response.json() == {
        "status": "CREATING",
        "available": False,
        "host": "",
        "port": None,
        "database": "",
        "user": "",
        "password": "",
        "connectionString": "",
    }


def test_database_shows_the_connection_with_the_password_masked(api, project):
    _ready(project)

    response = api.get(f"/api/projects/{project.pk}/database")

    assert response.status_code == 200
    assert response.json() == {
        "status": "RUNNING",
        "available": True,
        "host": "db.internal",
        "port": 5433,
        "database": "blog_db",
        "user": "blog_owner",
        "password": "••••••••",
        "connectionString": "postgresql://blog_owner:••••••••@db.internal:5433/blog_db",
    }
    assert "pa%3Ass" not in response.content.decode()
    assert "pa:ss@word" not in response.content.decode()


def test_reveal_gives_the_owner_the_password(api, project):
    _ready(project)

    response = api.post(f"/api/projects/{project.pk}/database/reveal")

    assert response.status_code == 200
    body = response.json()
    assert (body["password"], body["connectionString"]) == ("pa:ss@word", URL)


def test_another_users_database_is_404(api, others_project):
    _ready(others_project)

    responses = [
        api.get(f"/api/projects/{others_project.pk}/database"),
        api.post(f"/api/projects/{others_project.pk}/database/reveal"),
    ]

    assert [response.status_code for response in responses] == [404, 404]
    assert all("pa:ss@word" not in response.content.decode() for response in responses)


def test_database_routes_need_authentication(anonymous_api, project):
    _ready(project)

    responses = [
        anonymous_api.get(f"/api/projects/{project.pk}/database"),
        anonymous_api.post(f"/api/projects/{project.pk}/database/reveal"),
    ]

    assert [response.status_code for response in responses] == [401, 401]
