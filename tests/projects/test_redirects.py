"""Issue 14, finding 8: after a project action the page goes back only to a path on this site."""

import pytest

from projects import services
from projects.models import Project


@pytest.fixture
def project(user):
    return services.do_create_project(user, name="My Blog")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http://testserver.evil.example/",
        " https://evil.example/",
    ],
)
def test_a_next_on_another_site_goes_to_the_projects_page(user_client, project, target):
    response = user_client.post(f"/projects/{project.pk}/delete/", {"next": target})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert Project.objects.get(pk=project.pk).status == "TERMINATING"  # the action itself still ran


def test_a_next_on_this_site_is_followed(user_client, project):
    response = user_client.post(f"/projects/{project.pk}/delete/", {"next": f"/projects/{project.pk}/database/?tab=1"})

    assert response.status_code == 302
    assert response["Location"] == f"/projects/{project.pk}/database/?tab=1"
