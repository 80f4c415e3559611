"""Personal API tokens: created once in clear, stored as a hash, Bearer authentication, revocation."""

from rest_framework.test import APIClient

from identities.models import ApiToken
from identities.tokens import do_create_api_token, hash_token


def _bearer(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_create_shows_the_clear_token_once_and_stores_only_its_hash(api, user):
    response = api.post("/api/user/tokens", {"name": "deploy script"}, format="json")

    assert response.status_code == 201
    body = response.json()
    clear = body["clearToken"]
    assert clear.startswith("fsa_") and len(clear) == 47
    assert body["message"] == "Token deploy script created. Copy it now: it is not shown again."
    assert set(body["token"]) == {"id", "name", "prefix", "createdAt", "lastUsedAt", "revokedAt"}
    assert body["token"]["prefix"] == clear[:8]
    row = ApiToken.objects.get(user=user)
    assert row.token_hash == hash_token(clear)
    assert clear not in str(ApiToken.objects.filter(pk=row.pk).values().get())
    listed = api.get("/api/user/tokens")
    assert [item["name"] for item in listed.json()] == ["deploy script"]
    assert clear not in listed.content.decode()


def test_create_needs_a_name(api, user):
    response = api.post("/api/user/tokens", {"name": "   "}, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == {"name": ["This field may not be blank."]}
    assert ApiToken.objects.count() == 0


def test_a_bearer_token_acts_as_its_user_and_records_its_use(user, project):
    token, clear = do_create_api_token(user, name="ci")

    response = _bearer(clear).get("/api/projects")

    assert response.status_code == 200
    assert [item["id"] for item in response.json()] == [project.pk]
    token.refresh_from_db()
    assert token.last_used is not None


def test_a_bearer_token_needs_no_csrf_token_for_writes(user):
    _, clear = do_create_api_token(user, name="ci")
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {clear}")

    response = client.post("/api/projects", {"name": "From CI"}, format="json")

    assert response.status_code == 201


def test_a_wrong_token_is_401_with_what_to_do(user, project):
    response = _bearer("fsa_not-a-real-token").get("/api/projects")

    assert response.status_code == 401
    assert response.json() == {
        "message": "The API token is not valid or was revoked; create a new one in Settings → API tokens.",
        "code": "AUTHENTICATION_FAILED",
    }
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_malformed_authorization_header_is_401(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer two words")

    response = client.get("/api/projects")

    assert response.status_code == 401
    assert response.json()["message"] == "Send the token as 'Authorization: Bearer <token>'."


def test_a_revoked_token_stops_working(api, user):
    token, clear = do_create_api_token(user, name="old")

    revoked = api.delete(f"/api/user/tokens/{token.pk}")
    after = _bearer(clear).get("/api/projects")

    assert revoked.status_code == 200
    assert revoked.json() == {"message": "Token old revoked; requests using it now get 401."}
    assert after.status_code == 401
    token.refresh_from_db()
    assert token.revoked is not None


def test_a_token_of_an_inactive_user_is_401(user):
    _, clear = do_create_api_token(user, name="ci")
    user.is_active = False
    user.save()

    assert _bearer(clear).get("/api/projects").status_code == 401


def test_revoking_another_users_token_is_404_and_changes_nothing(api, other_user):
    token, clear = do_create_api_token(other_user, name="theirs")

    response = api.delete(f"/api/user/tokens/{token.pk}")

    assert response.status_code == 404
    assert response.json() == {"message": "Token not found.", "code": "NOT_FOUND"}
    token.refresh_from_db()
    assert token.revoked is None
    assert _bearer(clear).get("/api/projects").status_code == 200


def test_token_routes_need_authentication(anonymous_api, user):
    token, _ = do_create_api_token(user, name="ci")

    responses = [
        anonymous_api.get("/api/user/tokens"),
        anonymous_api.post("/api/user/tokens", {"name": "x"}, format="json"),
        anonymous_api.delete(f"/api/user/tokens/{token.pk}"),
    ]

    assert [response.status_code for response in responses] == [401, 401, 401]
    assert list(ApiToken.objects.values_list("name", "revoked")) == [("ci", None)]
