"""Linked identities: one user, several sign-in methods; linking, unlinking (never the last) and
the primary flag, through the services, the Sign-in methods page and GitHub's connect flow."""

import copy
import threading
import urllib.request
from urllib.parse import urlsplit

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from identities import services
from identities.models import IdentityProvider, UserIdentity
from identities.testing import FakeGitHub, GitHubAccount

User = get_user_model()
PASSWORD = "correct-horse-battery"


def identities_of(user):
    """(provider, provider_user_id, is_primary) of every identity, oldest first."""
    return list(
        UserIdentity.objects.filter(user=user).order_by("created", "pk").values_list("provider", "provider_user_id", "is_primary")
    )


def link_sealos(user, sealos_id="u-alice"):
    return services.do_link_identity(user, IdentityProvider.SEALOS, sealos_id, metadata={"userCrName": "alice-cr"})


def link_github(user, github_id="583231", token="gho_linked_token_value"):
    SocialAccount.objects.create(user=user, provider="github", uid=github_id, extra_data={"login": "octocat"})
    return services.do_link_identity(
        user, IdentityProvider.GITHUB, github_id, metadata={"login": "octocat", "name": "", "access_token": token}
    )


# --- services ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_first_identity_is_primary_and_later_ones_are_not(django_user_model):
    user = django_user_model.objects.create_user(username="newcomer")

    link_sealos(user)
    link_github(user)

    assert identities_of(user) == [(IdentityProvider.SEALOS, "u-alice", True), (IdentityProvider.GITHUB, "583231", False)]


@pytest.mark.django_db
def test_linking_again_refreshes_the_metadata_only(user):
    link_sealos(user)

    services.do_link_identity(user, IdentityProvider.SEALOS, "u-alice", metadata={"userCrName": "renamed"})

    assert UserIdentity.objects.filter(user=user).count() == 2
    assert UserIdentity.objects.get(provider=IdentityProvider.SEALOS).metadata == {"userCrName": "renamed"}
    assert identities_of(user) == [(IdentityProvider.PASSWORD, str(user.pk), True), (IdentityProvider.SEALOS, "u-alice", False)]


@pytest.mark.django_db
def test_an_account_linked_to_another_user_is_refused(user, other_user):
    link_sealos(other_user)
    before_user, before_other = identities_of(user), identities_of(other_user)

    with pytest.raises(services.IdentityInUse) as error:
        services.do_link_identity(user, IdentityProvider.SEALOS, "u-alice", metadata={"userCrName": "stolen"})

    assert str(error.value) == "This Sealos account is already linked to another user."
    assert identities_of(user) == before_user
    assert identities_of(other_user) == before_other
    assert UserIdentity.objects.get(provider=IdentityProvider.SEALOS).metadata == {"userCrName": "alice-cr"}


@pytest.mark.django_db
def test_the_last_identity_cannot_be_unlinked(user):
    [identity] = UserIdentity.objects.filter(user=user)

    with pytest.raises(services.LastIdentity) as error:
        services.do_unlink_identity(user, identity.pk)

    assert str(error.value) == "This is your only sign-in method; link another one before removing it."
    assert identities_of(user) == [(IdentityProvider.PASSWORD, str(user.pk), True)]
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


@pytest.mark.django_db
def test_unlinking_a_secondary_identity_keeps_the_primary(user):
    sealos = link_sealos(user)

    services.do_unlink_identity(user, sealos.pk)

    assert identities_of(user) == [(IdentityProvider.PASSWORD, str(user.pk), True)]


@pytest.mark.django_db
def test_unlinking_the_primary_promotes_the_oldest_remaining(user):
    link_sealos(user)
    link_github(user)
    password = UserIdentity.objects.get(user=user, provider=IdentityProvider.PASSWORD)

    services.do_unlink_identity(user, password.pk)

    assert identities_of(user) == [(IdentityProvider.SEALOS, "u-alice", True), (IdentityProvider.GITHUB, "583231", False)]


@pytest.mark.django_db
def test_unlinking_the_password_identity_turns_the_password_off(user, client):
    link_sealos(user)
    password = UserIdentity.objects.get(user=user, provider=IdentityProvider.PASSWORD)

    services.do_unlink_identity(user, password.pk)

    user.refresh_from_db()
    assert not user.has_usable_password()
    response = client.post("/accounts/login/", {"login": "alice", "password": PASSWORD})
    assert client.session.get("_auth_user_id") is None
    assert response.status_code == 200


@pytest.mark.django_db
def test_unlinking_github_removes_allauths_record_too(user):
    github = link_github(user)

    services.do_unlink_identity(user, github.pk)

    assert identities_of(user) == [(IdentityProvider.PASSWORD, str(user.pk), True)]
    assert SocialAccount.objects.count() == 0


@pytest.mark.django_db
def test_another_users_identity_is_not_found_and_not_touched(user, other_user):
    theirs = link_sealos(other_user)
    link_github(user)
    before = identities_of(other_user)

    with pytest.raises(UserIdentity.DoesNotExist):
        services.do_unlink_identity(user, theirs.pk)
    with pytest.raises(UserIdentity.DoesNotExist):
        services.do_set_primary(user, theirs.pk)

    assert identities_of(other_user) == before


@pytest.mark.django_db
def test_set_primary_moves_the_flag(user):
    sealos = link_sealos(user)

    services.do_set_primary(user, sealos.pk)

    assert identities_of(user) == [(IdentityProvider.PASSWORD, str(user.pk), False), (IdentityProvider.SEALOS, "u-alice", True)]


@pytest.mark.django_db
def test_set_primary_on_the_primary_changes_nothing(user):
    password = UserIdentity.objects.get(user=user)
    updated = password.updated

    services.do_set_primary(user, password.pk)

    password.refresh_from_db()
    assert password.is_primary and password.updated == updated


@pytest.mark.django_db(transaction=True)
def test_concurrent_primary_changes_leave_exactly_one_primary(make_user):
    user = make_user("alice")
    sealos = link_sealos(user)
    github = link_github(user)
    password = UserIdentity.objects.get(user=user, provider=IdentityProvider.PASSWORD)
    errors = []

    def flip(identity_ids):
        try:
            for identity_id in identity_ids * 15:
                services.do_set_primary(user, identity_id)
        except Exception as error:  # noqa: BLE001 - the test reports whatever went wrong
            errors.append(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=flip, args=([sealos.pk, password.pk],)),
        threading.Thread(target=flip, args=([github.pk, sealos.pk],)),
        threading.Thread(target=flip, args=([password.pk, github.pk],)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert UserIdentity.objects.filter(user=user, is_primary=True).count() == 1
    assert UserIdentity.objects.filter(user=user).count() == 3


# --- the Sign-in methods page --------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_lists_the_methods_without_any_token(user_client, user):
    link_github(user, token="gho_must_never_be_shown")
    link_sealos(user)

    response = user_client.get("/identities/")

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('class="card identity"') == 3
    assert "@octocat" in html and "alice-cr" in html and ">alice<" in html.replace("</span>", "<")
    assert html.count("Primary</span>") == 1
    assert "gho_must_never_be_shown" not in html


@pytest.mark.django_db
def test_the_page_offers_no_removal_of_the_last_method(user_client):
    response = user_client.get("/identities/")

    assert b"Remove</button>" not in response.content
    assert b"Make primary" not in response.content


@pytest.mark.django_db
def test_removing_through_the_page(user_client, user):
    sealos = link_sealos(user)

    response = user_client.post(f"/identities/{sealos.pk}/unlink/")

    assert response.status_code == 302 and response["Location"] == "/identities/"
    assert identities_of(user) == [(IdentityProvider.PASSWORD, str(user.pk), True)]


@pytest.mark.django_db
def test_removing_the_last_method_through_the_page_is_refused_with_a_message(user_client, user):
    [identity] = UserIdentity.objects.filter(user=user)

    response = user_client.post(f"/identities/{identity.pk}/unlink/", follow=True)

    assert "This is your only sign-in method; link another one before removing it." in response.content.decode()
    assert identities_of(user) == [(IdentityProvider.PASSWORD, str(user.pk), True)]


@pytest.mark.django_db
def test_making_primary_through_the_page(user_client, user):
    sealos = link_sealos(user)

    response = user_client.post(f"/identities/{sealos.pk}/primary/")

    assert response.status_code == 302
    assert identities_of(user)[1] == (IdentityProvider.SEALOS, "u-alice", True)


@pytest.mark.django_db
def test_another_users_identity_is_404_on_the_page(user_client, other_user):
    theirs = link_sealos(other_user)
    before = identities_of(other_user)

    assert user_client.post(f"/identities/{theirs.pk}/unlink/").status_code == 404
    assert user_client.post(f"/identities/{theirs.pk}/primary/").status_code == 404
    assert identities_of(other_user) == before


@pytest.mark.django_db
def test_the_page_needs_a_signed_in_user_and_changes_need_post(user_client, user):
    sealos = link_sealos(user)

    anonymous = Client().get("/identities/")

    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    assert user_client.get(f"/identities/{sealos.pk}/unlink/").status_code == 405
    assert len(identities_of(user)) == 2


@pytest.mark.django_db
def test_allauths_own_disconnect_is_refused(user_client, user):
    link_github(user)
    account = SocialAccount.objects.get()

    user_client.post("/accounts/3rdparty/", {"account": account.pk})

    assert SocialAccount.objects.count() == 1
    assert len(identities_of(user)) == 2


# --- linking GitHub through allauth's connect flow -----------------------------------------------


@pytest.fixture
def github(settings):
    with FakeGitHub(client_id="client-id", client_secret="client-secret") as fake:
        settings.ENABLE_GITHUB_AUTH = True
        settings.GITHUB_OAUTH_BASE_URL = fake.url
        settings.GITHUB_API_BASE_URL = fake.url
        providers = copy.deepcopy(settings.SOCIALACCOUNT_PROVIDERS)
        providers["github"]["APP"] = {"client_id": "client-id", "secret": "client-secret", "key": ""}
        settings.SOCIALACCOUNT_PROVIDERS = providers
        yield fake


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def connect_github(client, github):
    """Link GitHub from the Sign-in methods page, following each redirect by hand."""
    page = client.get("/identities/")
    assert b"Link GitHub" in page.content
    start = client.post("/accounts/github/login/", {"process": "connect", "next": "/identities/"})
    assert start.status_code == 302
    try:
        urllib.request.build_opener(NoRedirect).open(start["Location"], timeout=5)
    except urllib.error.HTTPError as redirect:
        back = urlsplit(redirect.headers["Location"])
    return client.get(f"{back.path}?{back.query}")


@pytest.mark.django_db
def test_a_signed_in_user_links_github(user_client, user, github):
    github.signs_in(GitHubAccount(id=583231, login="octocat", name="The Octocat"))

    response = connect_github(user_client, github)

    assert response.status_code == 302 and response["Location"] == "/identities/"
    assert User.objects.count() == 1
    assert user_client.session["_auth_user_id"] == str(user.pk)
    assert identities_of(user) == [(IdentityProvider.PASSWORD, str(user.pk), True), (IdentityProvider.GITHUB, "583231", False)]
    [token] = github.issued_tokens
    assert UserIdentity.objects.get(provider=IdentityProvider.GITHUB).metadata == {
        "login": "octocat", "name": "The Octocat", "access_token": token
    }
    assert list(SocialAccount.objects.values_list("user_id", "uid")) == [(user.pk, "583231")]
    # Once linked, the page offers no second GitHub link, and GitHub alone now signs in as alice.
    assert b"Link GitHub" not in user_client.get("/identities/").content


@pytest.mark.django_db
def test_a_linked_github_account_signs_in_as_the_same_user(user_client, user, github):
    github.signs_in(GitHubAccount(id=583231, login="octocat"))
    connect_github(user_client, github)
    client = Client()  # another browser, signed in nowhere

    start = client.post("/accounts/github/login/")
    try:
        urllib.request.build_opener(NoRedirect).open(start["Location"], timeout=5)
    except urllib.error.HTTPError as redirect:
        back = urlsplit(redirect.headers["Location"])
    client.get(f"{back.path}?{back.query}")

    assert client.session["_auth_user_id"] == str(user.pk)
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_linking_a_github_account_of_another_user_is_refused(user_client, user, other_user, github):
    link_github(other_user, github_id="583231")
    github.signs_in(GitHubAccount(id=583231, login="octocat"))

    response = connect_github(user_client, github)

    assert response.status_code == 302
    assert identities_of(user) == [(IdentityProvider.PASSWORD, str(user.pk), True)]
    assert list(SocialAccount.objects.values_list("user_id", flat=True)) == [other_user.pk]
    assert UserIdentity.objects.get(provider=IdentityProvider.GITHUB).metadata["access_token"] == "gho_linked_token_value"


@pytest.mark.django_db
def test_an_identity_row_without_allauths_record_refuses_the_link_and_takes_allauths_record_back(
    user_client, user, other_user, github
):
    """Records edited by hand: the GITHUB identity belongs to mallory but allauth knows no account.
    Linking it to alice must fail without leaving allauth's new record behind."""
    services.do_link_identity(other_user, IdentityProvider.GITHUB, "583231", metadata={"login": "octocat"})
    github.signs_in(GitHubAccount(id=583231, login="octocat"))

    connect_github(user_client, github)

    assert identities_of(user) == [(IdentityProvider.PASSWORD, str(user.pk), True)]
    assert SocialAccount.objects.count() == 0
    assert UserIdentity.objects.get(provider=IdentityProvider.GITHUB).user_id == other_user.pk


@pytest.mark.django_db
def test_no_github_link_is_offered_while_github_is_disabled(user_client, settings):
    settings.ENABLE_GITHUB_AUTH = False

    assert b"Link GitHub" not in user_client.get("/identities/").content
