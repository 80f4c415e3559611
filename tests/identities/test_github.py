"""GitHub sign-in: the whole OAuth exchange against a local fake GitHub (a real HTTP server),
driven through Django's test client with every redirect followed by hand."""

import copy
import urllib.request
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from allauth.socialaccount.models import SocialAccount, SocialToken
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection

from fullstackagent.encryption import PREFIX
from identities.models import IdentityProvider, UserIdentity
from identities.testing import FakeGitHub, GitHubAccount

CLIENT_ID = "Iv1.fullstackagent-test"
CLIENT_SECRET = "github-client-secret-for-tests"
OCTOCAT = GitHubAccount(id=583231, login="octocat", name="The Octocat", email="octocat@github.example")
CALLBACK = "http://testserver/accounts/github/login/callback/"

User = get_user_model()
pytestmark = pytest.mark.django_db


@pytest.fixture
def github(settings):
    with FakeGitHub(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as fake:
        settings.ENABLE_GITHUB_AUTH = True
        settings.GITHUB_OAUTH_BASE_URL = fake.url
        settings.GITHUB_API_BASE_URL = fake.url
        providers = copy.deepcopy(settings.SOCIALACCOUNT_PROVIDERS)
        providers["github"]["APP"] = {"client_id": CLIENT_ID, "secret": CLIENT_SECRET, "key": ""}
        settings.SOCIALACCOUNT_PROVIDERS = providers
        yield fake


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def visit_github(url: str) -> str:
    """The browser at GitHub: GET the authorize URL, return where GitHub redirects back to."""
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(url, timeout=5)
    except urllib.error.HTTPError as redirect:
        assert redirect.code == 302
        return redirect.headers["Location"]
    raise AssertionError("GitHub did not redirect")


def start_sign_in(client, **data):
    """POST the sign-in page's GitHub button; returns the authorize URL's parts and query."""
    response = client.post("/accounts/github/login/", data)
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    return location, {key: values[-1] for key, values in parse_qs(location.query).items()}


def return_from_github(client, authorize_url: str):
    back = urlsplit(visit_github(authorize_url))
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    return client.get(f"{back.path}?{back.query}"), parse_qs(back.query)


def raw_metadata(identity_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT metadata FROM identities_useridentity WHERE id = %s", [identity_id])
        return cursor.fetchone()[0]


def signed_in_user_id(client):
    return client.session.get("_auth_user_id")


def test_the_authorize_url_carries_client_state_scope_and_callback(github, client):
    location, query = start_sign_in(client)

    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{github.url}/login/oauth/authorize"
    assert query["client_id"] == CLIENT_ID
    assert query["scope"] == "repo read:user"
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == CALLBACK
    assert len(query["state"]) >= 12
    assert github.requests == []  # nothing reached GitHub before the browser goes there


def test_a_new_github_user_gets_an_account_and_a_primary_identity_holding_the_token(github, client):
    github.signs_in(OCTOCAT)
    _, query = start_sign_in(client)

    response, _ = return_from_github(client, f"{github.url}/login/oauth/authorize?{urlencode(query)}")

    assert response.status_code == 302
    assert response["Location"] == "/"
    user = User.objects.get()
    assert user.username == "octocat"
    assert not user.has_usable_password()
    assert signed_in_user_id(client) == str(user.pk)
    identity = UserIdentity.objects.get()
    assert (identity.user_id, identity.provider, identity.provider_user_id, identity.is_primary) == (
        user.pk, IdentityProvider.GITHUB, "583231", True
    )
    [token] = github.issued_tokens
    assert identity.metadata == {"login": "octocat", "name": "The Octocat", "access_token": token}
    # The token is encrypted at rest, and allauth keeps no copy of it anywhere.
    stored = raw_metadata(identity.pk)
    assert stored.startswith(PREFIX) and token not in stored
    assert SocialToken.objects.count() == 0
    assert list(SocialAccount.objects.values_list("user_id", "provider", "uid")) == [(user.pk, "github", "583231")]
    assert token not in str(SocialAccount.objects.get().extra_data)
    assert all(token not in str(session.get_decoded()) for session in Session.objects.all())
    # The exchange itself: the code was traded with the client secret, the profile read with the token.
    [exchange] = github.calls("/login/oauth/access_token")
    assert exchange.form["client_secret"] == CLIENT_SECRET and exchange.form["redirect_uri"] == CALLBACK
    [profile] = github.calls("/user")
    assert profile.headers["Authorization"] == f"token {token}"


def sign_in_with_github(github, client):
    _, query = start_sign_in(client)
    response, _ = return_from_github(client, f"{github.url}/login/oauth/authorize?{urlencode(query)}")
    return response


def test_a_returning_github_user_signs_into_the_same_account_with_a_fresh_token(github, client):
    github.signs_in(OCTOCAT)
    sign_in_with_github(github, client)
    client.post("/accounts/logout/")
    assert signed_in_user_id(client) is None
    github.signs_in(GitHubAccount(id=583231, login="octocat", name="Mona Octocat"))

    response = sign_in_with_github(github, client)

    assert response.status_code == 302
    user = User.objects.get()
    assert signed_in_user_id(client) == str(user.pk)
    identity = UserIdentity.objects.get()
    first_token, second_token = github.issued_tokens
    assert first_token != second_token
    assert identity.metadata == {"login": "octocat", "name": "Mona Octocat", "access_token": second_token}
    assert identity.is_primary
    assert SocialAccount.objects.count() == 1
    assert SocialToken.objects.count() == 0


def test_a_github_login_that_collides_with_a_local_username_gets_another_username(github, client, make_user):
    taken = make_user("octocat")
    github.signs_in(OCTOCAT)

    sign_in_with_github(github, client)

    assert User.objects.count() == 2
    newcomer = User.objects.exclude(pk=taken.pk).get()
    assert newcomer.username != "octocat"
    assert signed_in_user_id(client) == str(newcomer.pk)
    assert UserIdentity.objects.get(provider=IdentityProvider.GITHUB).user_id == newcomer.pk


def test_denied_consent_creates_nothing_and_signs_nobody_in(github, client):
    github.denies()
    _, query = start_sign_in(client)

    response, back = return_from_github(client, f"{github.url}/login/oauth/authorize?{urlencode(query)}")

    assert back["error"] == ["access_denied"]
    assert response.status_code == 302
    assert response["Location"] == "/accounts/3rdparty/login/cancelled/"
    assert signed_in_user_id(client) is None
    assert User.objects.count() == 0
    assert UserIdentity.objects.count() == 0
    assert SocialAccount.objects.count() == 0
    assert github.calls("/login/oauth/access_token") == []


def test_a_state_mismatch_is_refused_before_the_code_is_exchanged(github, client):
    github.signs_in(OCTOCAT)
    _, query = start_sign_in(client)
    back = urlsplit(visit_github(f"{github.url}/login/oauth/authorize?{urlencode(query)}"))
    code = parse_qs(back.query)["code"][0]

    response = client.get("/accounts/github/login/callback/", {"code": code, "state": "forged-state-value"})

    assert response.status_code == 401
    assert "Signing in with GitHub did not work." in response.content.decode()
    assert signed_in_user_id(client) is None
    assert User.objects.count() == 0
    assert UserIdentity.objects.count() == 0
    assert SocialAccount.objects.count() == 0
    assert github.calls("/login/oauth/access_token") == []


def test_a_callback_from_another_browser_session_is_refused(github, client, django_user_model):
    """The state lives in the session that started the sign-in: a code+state pair replayed into a
    different browser (a login-CSRF attempt) finds no state there."""
    from django.test import Client

    github.signs_in(OCTOCAT)
    _, query = start_sign_in(client)
    back = urlsplit(visit_github(f"{github.url}/login/oauth/authorize?{urlencode(query)}"))

    victim = Client()
    response = victim.get(f"{back.path}?{back.query}")

    assert response.status_code == 401
    assert victim.session.get("_auth_user_id") is None
    assert django_user_model.objects.count() == 0
    assert github.calls("/login/oauth/access_token") == []


def test_the_sign_in_page_offers_github_only_when_enabled(github, client, settings):
    enabled = client.get("/accounts/login/")
    settings.ENABLE_GITHUB_AUTH = False
    disabled = client.get("/accounts/login/")

    assert b"Sign in with GitHub" in enabled.content
    assert b'action="/accounts/github/login/"' in enabled.content
    assert b"Sign in with GitHub" not in disabled.content
    assert b"/accounts/github/" not in disabled.content


def test_the_sign_in_page_shows_only_the_enabled_methods(github, client, settings):
    settings.ENABLE_PASSWORD_AUTH = False
    settings.ENABLE_SEALOS_AUTH = False

    html = client.get("/accounts/login/").content.decode()

    assert "Sign in with GitHub" in html
    assert 'name="password"' not in html
    assert "Sign in with Sealos" not in html
    assert ">or<" not in html


def test_github_urls_refuse_while_github_is_disabled(github, client, settings):
    settings.ENABLE_GITHUB_AUTH = False

    start = client.post("/accounts/github/login/")
    callback = client.get("/accounts/github/login/callback/", {"code": "x", "state": "y"})

    assert start.status_code == 404
    assert callback.status_code == 404
    assert github.requests == []
    assert User.objects.count() == 0


def test_a_get_on_the_login_url_does_not_leave_for_github(github, client):
    """Starting a sign-in needs the page's POST (with its CSRF token), so no other site can send a
    visitor to GitHub and back signed in as someone else."""
    response = client.get("/accounts/github/login/")

    assert response.status_code == 200
    assert "You are about to sign in with your GitHub account." in response.content.decode()
    assert github.url not in response.content.decode()
    assert github.requests == []
