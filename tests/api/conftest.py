import pytest
from rest_framework.test import APIClient

from projects import services


@pytest.fixture
def api(user):
    """The user's API client, signed in with a session (CSRF is not enforced by APIClient)."""
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def other_api(other_user):
    client = APIClient()
    client.force_login(other_user)
    return client


@pytest.fixture
def anonymous_api(db):
    return APIClient()


@pytest.fixture
def project(user):
    return services.do_create_project(user, name="My Blog", description="A blog about boats")


@pytest.fixture
def others_project(other_user):
    return services.do_create_project(other_user, name="Secret Plans")
