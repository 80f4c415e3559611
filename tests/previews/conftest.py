import pytest
from rest_framework.test import APIClient


@pytest.fixture
def api_client_for():
    """An API client signed in as the given user (in this process, against the committed data)."""

    def make(user) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make
