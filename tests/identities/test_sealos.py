"""Sealos sign-in: the JWT and kubeconfig checks, the one-transaction account set-up, and the
Aiproxy key request that never blocks signing in."""

import json
import time

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from aiproxy.testing import FakeKeyHub
from fullstackagent.encryption import PREFIX
from identities.models import ConfigKey, IdentityProvider, UserConfig, UserIdentity
from identities.services import user_config_map

SECRET = "sealos-jwt-secret-for-tests-0123456789"
ENDPOINT = "/identities/sealos/sign-in/"
BASE_URL = "https://aiproxy.example/anthropic"

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: sealos
  cluster:
    server: https://sealos.example:6443
    certificate-authority-data: bm90LWEtcmVhbC1jYQ==
contexts:
- name: sealos
  context:
    cluster: sealos
    user: u-alice
    namespace: ns-alice
current-context: sealos
users:
- name: u-alice
  user:
    token: kube-token-of-alice
"""

User = get_user_model()
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sealos_enabled(settings):
    settings.ENABLE_SEALOS_AUTH = True
    settings.SEALOS_JWT_SECRET = SECRET
    settings.AIPROXY_ENDPOINT = ""
    settings.ANTHROPIC_BASE_URL = ""


@pytest.fixture
def keyhub(settings):
    with FakeKeyHub() as fake:
        settings.AIPROXY_ENDPOINT = fake.url
        settings.ANTHROPIC_BASE_URL = BASE_URL
        settings.AIPROXY_TIMEOUT_SECONDS = 0.5
        yield fake


def claims(**changes):
    now = int(time.time())
    document = {
        "workspaceUid": "6f1c2e4a-ws",
        "workspaceId": "ns-alice",
        "regionUid": "region-hzh",
        "userCrUid": "cr-uid-1",
        "userCrName": "alice-cr",
        "userId": "u-alice",
        "userUid": "uid-alice",
        "iat": now - 10,
        "exp": now + 3600,
    }
    document.update(changes)
    return {key: value for key, value in document.items() if value is not None}


def token(secret=SECRET, algorithm="HS256", **changes):
    return jwt.encode(claims(**changes), secret, algorithm=algorithm)


def post(client, body, **headers):
    return client.post(ENDPOINT, json.dumps(body), content_type="application/json", **headers)


def counts():
    return User.objects.count(), UserIdentity.objects.count(), UserConfig.objects.count()


def signed_in_user_id(client):
    return client.session.get("_auth_user_id")


def test_a_valid_session_creates_the_user_its_identity_and_its_kubeconfig(client):
    response = post(client, {"token": token(), "kubeconfig": KUBECONFIG})

    assert response.status_code == 200
    assert response.json() == {"redirect": "/", "created": True, "username": "u-alice"}
    user = User.objects.get()
    assert user.username == "u-alice"
    assert not user.has_usable_password()
    assert signed_in_user_id(client) == str(user.pk)
    identity = UserIdentity.objects.get()
    assert (identity.user_id, identity.provider, identity.provider_user_id, identity.is_primary) == (
        user.pk, IdentityProvider.SEALOS, "u-alice", True
    )
    assert identity.metadata == {
        "userId": "u-alice",
        "userUid": "uid-alice",
        "userCrName": "alice-cr",
        "userCrUid": "cr-uid-1",
        "workspaceId": "ns-alice",
        "workspaceUid": "6f1c2e4a-ws",
        "regionUid": "region-hzh",
    }
    config = UserConfig.objects.get()
    assert (config.key, config.value, config.is_secret) == (ConfigKey.KUBECONFIG, KUBECONFIG, True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM identities_userconfig WHERE id = %s", [config.pk])
        stored = cursor.fetchone()[0]
    assert stored.startswith(PREFIX) and "kube-token-of-alice" not in stored
    assert "kube-token-of-alice" not in response.content.decode()


def test_a_returning_user_signs_into_the_same_account_and_gets_the_new_kubeconfig(client):
    post(client, {"token": token(), "kubeconfig": KUBECONFIG})
    client.post("/accounts/logout/")
    renewed = KUBECONFIG.replace("kube-token-of-alice", "kube-token-renewed")

    response = post(client, {"token": token(userCrName="alice-renamed"), "kubeconfig": renewed})

    assert response.status_code == 200
    assert response.json()["created"] is False
    assert counts() == (1, 1, 1)
    user = User.objects.get()
    assert signed_in_user_id(client) == str(user.pk)
    assert user_config_map(user.pk) == {ConfigKey.KUBECONFIG: renewed}
    assert UserIdentity.objects.get().metadata["userCrName"] == "alice-renamed"


def test_an_expired_session_is_refused_and_creates_nothing(client):
    now = int(time.time())

    response = post(client, {"token": token(iat=now - 7200, exp=now - 60), "kubeconfig": KUBECONFIG})

    assert response.status_code == 403
    assert response.json() == {
        "code": "SEALOS_TOKEN_EXPIRED",
        "error": "The Sealos session has expired; reopen the app from Sealos.",
    }
    assert counts() == (0, 0, 0)
    assert signed_in_user_id(client) is None


def test_an_expired_session_of_a_known_user_changes_nothing(client):
    post(client, {"token": token(), "kubeconfig": KUBECONFIG})
    client.post("/accounts/logout/")
    now = int(time.time())

    response = post(
        client, {"token": token(iat=now - 7200, exp=now - 60), "kubeconfig": KUBECONFIG.replace("alice", "mallory")}
    )

    assert response.status_code == 403
    assert counts() == (1, 1, 1)
    assert user_config_map(User.objects.get().pk) == {ConfigKey.KUBECONFIG: KUBECONFIG}
    assert signed_in_user_id(client) is None


def test_a_token_signed_with_another_secret_is_refused(client):
    response = post(client, {"token": token(secret="someone-elses-secret-0123456789"), "kubeconfig": KUBECONFIG})

    assert response.status_code == 403
    assert response.json() == {
        "code": "SEALOS_TOKEN_INVALID",
        "error": "The Sealos session token is not signed by this Sealos.",
    }
    assert counts() == (0, 0, 0)
    assert signed_in_user_id(client) is None


def test_an_unsigned_token_is_refused(client):
    unsigned = jwt.encode(claims(), None, algorithm="none")

    response = post(client, {"token": unsigned, "kubeconfig": KUBECONFIG})

    assert response.status_code == 403
    assert response.json()["code"] == "SEALOS_TOKEN_INVALID"
    assert counts() == (0, 0, 0)


def test_garbage_instead_of_a_token_is_refused(client):
    response = post(client, {"token": "not.a.jwt", "kubeconfig": KUBECONFIG})

    assert response.status_code == 403
    assert response.json()["code"] == "SEALOS_TOKEN_INVALID"
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize(
    "claim",
    ["workspaceUid", "workspaceId", "regionUid", "userCrUid", "userCrName", "userId", "userUid", "iat", "exp"],
)
def test_a_token_missing_a_required_claim_is_refused(client, claim):
    response = post(client, {"token": token(**{claim: None}), "kubeconfig": KUBECONFIG})

    assert response.status_code == 400
    assert response.json() == {
        "code": "SEALOS_TOKEN_CLAIMS_MISSING",
        "error": f"The Sealos session token lacks the claim {claim}.",
    }
    assert counts() == (0, 0, 0)
    assert signed_in_user_id(client) is None


def test_empty_and_non_string_claims_count_as_missing(client):
    response = post(client, {"token": token(userId="  ", workspaceId=42), "kubeconfig": KUBECONFIG})

    assert response.status_code == 400
    assert response.json()["error"] == "The Sealos session token lacks the claims workspaceId, userId."
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize(
    ("kubeconfig", "message"),
    [
        ("clusters: [unclosed\n", "The kubeconfig is not valid YAML (line 2)."),
        ("just a string", "This is not a kubeconfig: it has no 'contexts' list."),
        (KUBECONFIG.replace("current-context: sealos", "current-context: elsewhere"),
         "Your kubeconfig's context refers to a context 'elsewhere' that it does not define."),
        (KUBECONFIG.replace("    token: kube-token-of-alice", "    exec:\n      command: /bin/steal"),
         "The kubeconfig's user signs in with an 'exec' plugin, which cannot run on the platform; "
         "use a kubeconfig with a token or a client certificate (for example a service account's)."),
    ],
    ids=["not-yaml", "not-a-kubeconfig", "unknown-context", "exec-plugin"],
)
def test_a_malformed_kubeconfig_is_refused_and_creates_nothing(client, kubeconfig, message):
    response = post(client, {"token": token(), "kubeconfig": kubeconfig})

    assert response.status_code == 400
    assert response.json() == {"code": "KUBECONFIG_INVALID", "error": message}
    assert counts() == (0, 0, 0)
    assert signed_in_user_id(client) is None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"kubeconfig": KUBECONFIG}, "SEALOS_TOKEN_REQUIRED"),
        ({"token": "placeholder"}, "KUBECONFIG_REQUIRED"),
        ({"token": "placeholder", "kubeconfig": "   "}, "KUBECONFIG_REQUIRED"),
    ],
)
def test_a_missing_field_is_refused(client, body, code):
    if body.get("token") == "placeholder":
        body = {**body, "token": token()}

    response = post(client, body)

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert counts() == (0, 0, 0)


def test_a_failure_half_way_through_leaves_nothing_behind(client, monkeypatch):
    """The user and identity are written before the kubeconfig; if storing it fails, both go."""
    import identities.services

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(identities.services, "set_user_config", broken)

    with pytest.raises(RuntimeError):
        post(client, {"token": token(), "kubeconfig": KUBECONFIG})

    assert counts() == (0, 0, 0)
    assert signed_in_user_id(client) is None


def test_a_username_taken_locally_gives_the_sealos_user_another(client, make_user):
    local = make_user("u-alice")

    response = post(client, {"token": token(), "kubeconfig": KUBECONFIG})

    assert response.json()["username"] == "u-alice-2"
    sealos_user = User.objects.exclude(pk=local.pk).get()
    assert sealos_user.username == "u-alice-2"
    assert UserIdentity.objects.get(provider=IdentityProvider.SEALOS).user_id == sealos_user.pk
    assert signed_in_user_id(client) == str(sealos_user.pk)


def test_a_disabled_account_is_refused(client):
    post(client, {"token": token(), "kubeconfig": KUBECONFIG})
    client.post("/accounts/logout/")
    User.objects.update(is_active=False)

    response = post(client, {"token": token(), "kubeconfig": KUBECONFIG})

    assert response.status_code == 403
    assert response.json() == {"code": "ACCOUNT_DISABLED", "error": "This account is disabled."}
    assert signed_in_user_id(client) is None


def test_only_json_posts_are_accepted(client):
    form = client.post(ENDPOINT, {"token": token(), "kubeconfig": KUBECONFIG})
    get = client.get(ENDPOINT)

    assert form.status_code == 415
    assert form.json()["code"] == "JSON_REQUIRED"
    assert get.status_code == 405
    assert counts() == (0, 0, 0)


def test_a_post_from_another_origin_is_refused(client):
    response = post(client, {"token": token(), "kubeconfig": KUBECONFIG}, HTTP_ORIGIN="https://evil.example")

    assert response.status_code == 403
    assert response.json()["code"] == "ORIGIN_REFUSED"
    assert counts() == (0, 0, 0)


def test_a_post_from_our_own_page_is_accepted(client):
    response = post(client, {"token": token(), "kubeconfig": KUBECONFIG}, HTTP_ORIGIN="http://testserver")

    assert response.status_code == 200


def test_sealos_sign_in_does_not_exist_while_disabled(client, settings):
    settings.ENABLE_SEALOS_AUTH = False

    assert post(client, {"token": token(), "kubeconfig": KUBECONFIG}).status_code == 404
    assert client.get("/identities/sealos/").status_code == 404
    assert counts() == (0, 0, 0)


def frame_ancestors(response) -> str:
    """The frame-ancestors directive of the response's Content-Security-Policy."""
    directives = dict(part.strip().partition(" ")[::2] for part in response["Content-Security-Policy"].split(";"))
    return directives["frame-ancestors"]


def test_the_sealos_page_may_be_framed_only_by_the_sealos_desktop(client, settings):
    settings.SEALOS_DESKTOP_ORIGINS = ["https://cloud.sealos.example"]

    framed = client.get("/identities/sealos/")
    settings.SEALOS_DESKTOP_ORIGINS = []
    unframed = client.get("/identities/sealos/")

    assert framed.status_code == 200
    assert frame_ancestors(framed) == "https://cloud.sealos.example"
    assert "X-Frame-Options" not in framed
    assert b'data-endpoint="/identities/sealos/sign-in/"' in framed.content
    assert unframed["X-Frame-Options"] == "DENY"


def test_the_sign_in_page_links_sealos_only_when_enabled(client, settings):
    enabled = client.get("/accounts/login/")
    settings.ENABLE_SEALOS_AUTH = False
    disabled = client.get("/accounts/login/")

    assert b'href="/identities/sealos/"' in enabled.content
    assert b"/identities/sealos/" not in disabled.content


# --- Aiproxy at sign-in --------------------------------------------------------------------------


def test_a_new_sealos_user_gets_an_aiproxy_key(client, keyhub):
    keyhub.answers_with_key("sk-aiproxy-for-alice")

    response = post(client, {"token": token(), "kubeconfig": KUBECONFIG})

    assert response.status_code == 200
    user = User.objects.get()
    assert user_config_map(user.pk) == {
        ConfigKey.KUBECONFIG: KUBECONFIG,
        ConfigKey.ANTHROPIC_API_KEY: "sk-aiproxy-for-alice",
        ConfigKey.ANTHROPIC_BASE_URL: BASE_URL,
    }
    assert [request.json() for request in keyhub.requests] == [{"name": "fullstackagent-u-alice", "kc": KUBECONFIG}]
    assert "sk-aiproxy-for-alice" not in response.content.decode()


@pytest.mark.parametrize(
    "failure",
    [
        lambda hub: hub.answers_code(500, "quota exceeded"),
        lambda hub: hub.hangs(3.0),
        lambda hub: hub.answers_raw(b"<html>gateway</html>"),
        lambda hub: hub.answers_http_status(500),
    ],
    ids=["error-code", "timeout", "malformed", "http-500"],
)
def test_sign_in_works_when_aiproxy_fails_and_the_key_comes_at_the_next_sign_in(client, keyhub, failure):
    failure(keyhub)

    first = post(client, {"token": token(), "kubeconfig": KUBECONFIG})

    assert first.status_code == 200
    user = User.objects.get()
    assert signed_in_user_id(client) == str(user.pk)
    assert user_config_map(user.pk) == {ConfigKey.KUBECONFIG: KUBECONFIG}

    client.post("/accounts/logout/")
    keyhub.answers_with_key("sk-aiproxy-second-try")
    second = post(client, {"token": token(), "kubeconfig": KUBECONFIG})

    assert second.status_code == 200
    assert user_config_map(user.pk)[ConfigKey.ANTHROPIC_API_KEY] == "sk-aiproxy-second-try"
    assert len(keyhub.requests) == 2


def test_a_user_with_a_key_is_not_sent_to_aiproxy_again(client, keyhub):
    keyhub.answers_with_key("sk-first")
    post(client, {"token": token(), "kubeconfig": KUBECONFIG})
    client.post("/accounts/logout/")

    post(client, {"token": token(), "kubeconfig": KUBECONFIG})

    assert len(keyhub.requests) == 1
    assert user_config_map(User.objects.get().pk)[ConfigKey.ANTHROPIC_API_KEY] == "sk-first"


def test_an_unreachable_aiproxy_does_not_block_sign_in(client, settings):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.AIPROXY_ENDPOINT = f"http://127.0.0.1:{port}"
    settings.ANTHROPIC_BASE_URL = BASE_URL

    response = post(client, {"token": token(), "kubeconfig": KUBECONFIG})

    assert response.status_code == 200
    assert user_config_map(User.objects.get().pk) == {ConfigKey.KUBECONFIG: KUBECONFIG}


def test_inside_sealos_every_page_may_be_framed_by_the_desktop_only(user_client, settings):
    settings.SEALOS_DESKTOP_ORIGINS = ["https://cloud.sealos.example"]
    framed = user_client.get("/identities/")
    settings.ENABLE_SEALOS_AUTH = False
    unframed = user_client.get("/identities/")

    assert frame_ancestors(framed) == "https://cloud.sealos.example"
    assert "X-Frame-Options" not in framed
    # Every page has the platform's policy (issue 14); outside Sealos it lets no one frame it.
    assert frame_ancestors(unframed) == "'none'"
    assert unframed["X-Frame-Options"] == "DENY"
