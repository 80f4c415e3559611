"""Sign-up, sign-in and sign-out with a username and password (django-allauth), the server-side
password rules, and the rate limit on repeated failed sign-ins."""

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import override_settings

from identities.models import IdentityProvider, UserIdentity

User = get_user_model()

SIGNUP_URL = "/accounts/signup/"
LOGIN_URL = "/accounts/login/"
LOGOUT_URL = "/accounts/logout/"
PASSWORD = "correct-horse-battery"
INVALID_LOGIN = "The username and/or password you specified are not correct."
RATE_LIMITED = "Too many failed login attempts. Try again later."


@pytest.fixture(autouse=True)
def empty_cache():
    """allauth keeps its rate-limit counters in the cache (this run's Redis): every test starts clean."""
    cache.clear()
    yield
    cache.clear()


def signed_in_user_id(client):
    return client.session.get("_auth_user_id")


def sign_up(client, username="bob", password1=PASSWORD, password2=None):
    return client.post(
        SIGNUP_URL, {"username": username, "password1": password1, "password2": password2 or password1}
    )


def sign_in(client, username="alice", password=PASSWORD, **extra):
    return client.post(LOGIN_URL, {"login": username, "password": password}, **extra)


def test_sign_up_page_shows_the_form(client, db):
    response = client.get(SIGNUP_URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html
    assert 'name="password1"' in html
    assert 'name="password2"' in html


def test_sign_up_creates_the_user_with_a_primary_password_identity(client, db):
    response = sign_up(client, "bob")

    assert response.status_code == 302
    assert response["Location"] == "/"
    user = User.objects.get(username="bob")
    assert user.check_password(PASSWORD)
    assert list(UserIdentity.objects.filter(user=user).values_list("provider", "provider_user_id", "is_primary")) == [
        (IdentityProvider.PASSWORD, str(user.pk), True)
    ]
    assert signed_in_user_id(client) == str(user.pk)


@pytest.mark.parametrize(
    "password, message",
    [
        ("Zq7!xk", "This password is too short. It must contain at least 8 characters."),
        ("iloveyou", "This password is too common."),
        ("48151623429", "This password is entirely numeric."),
    ],
)
def test_sign_up_refuses_a_weak_password_on_the_server(client, db, password, message):
    response = sign_up(client, "bob", password)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not User.objects.filter(username="bob").exists()
    assert UserIdentity.objects.count() == 0
    assert signed_in_user_id(client) is None


def test_sign_up_refuses_a_password_like_the_username(client, db):
    response = sign_up(client, "margaretha", "margaretha1")

    assert response.status_code == 200
    assert "The password is too similar to the username." in response.content.decode()
    assert not User.objects.filter(username="margaretha").exists()


def test_sign_up_refuses_mismatched_passwords(client, db):
    response = sign_up(client, "bob", PASSWORD, "correct-horse-battery-staple")

    assert response.status_code == 200
    assert "You must type the same password each time." in response.content.decode()
    assert not User.objects.filter(username="bob").exists()


def test_sign_up_refuses_a_taken_username(client, user):
    response = sign_up(client, "alice", "another-long-passphrase")

    assert response.status_code == 200
    assert "A user with that username already exists." in response.content.decode()
    assert User.objects.filter(username="alice").count() == 1
    assert User.objects.get(username="alice").check_password(PASSWORD)
    assert UserIdentity.objects.count() == 1


def test_sign_up_is_closed_when_password_auth_is_off(client, db):
    with override_settings(ENABLE_PASSWORD_AUTH=False):
        response = sign_up(client, "bob")

    assert response.status_code == 200
    assert "Sign Up Closed" in response.content.decode()
    assert User.objects.count() == 0


def test_sign_in_page_shows_the_form(client, db):
    response = client.get(LOGIN_URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="login"' in html
    assert 'name="password"' in html
    assert 'href="/accounts/signup/"' in html


def test_sign_in_with_the_right_password(client, user):
    response = sign_in(client, "alice", PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert signed_in_user_id(client) == str(user.pk)
    assert client.get("/").status_code == 200


def test_sign_in_with_a_wrong_password_is_refused(client, user):
    response = sign_in(client, "alice", "wrong-horse-battery")

    assert response.status_code == 200
    assert INVALID_LOGIN in response.content.decode()
    assert signed_in_user_id(client) is None


def test_sign_in_of_an_unknown_user_is_refused_without_creating_one(client, db):
    response = sign_in(client, "nobody", PASSWORD)

    assert response.status_code == 200
    assert INVALID_LOGIN in response.content.decode()
    assert User.objects.count() == 0


def test_sign_out_needs_a_post(client, user):
    client.force_login(user)

    page = client.get(LOGOUT_URL)

    assert page.status_code == 200
    assert f'<form method="post" action="{LOGOUT_URL}">' in page.content.decode()
    assert signed_in_user_id(client) == str(user.pk)


def test_sign_out(client, user):
    client.force_login(user)

    response = client.post(LOGOUT_URL)

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert signed_in_user_id(client) is None
    assert client.get("/")["Location"].startswith("/accounts/login/")


def test_the_limit_is_five_failures_per_five_minutes_per_address_and_per_account():
    # The tests below count to these numbers.
    assert settings.ACCOUNT_RATE_LIMITS["login_failed"] == "5/5m/ip,5/5m/key"


def test_repeated_failed_sign_ins_lock_out_even_the_right_password(client, user):
    for _ in range(5):
        refused = sign_in(client, "alice", "wrong-horse-battery")
        assert INVALID_LOGIN in refused.content.decode()

    response = sign_in(client, "alice", PASSWORD)

    assert response.status_code == 200
    html = response.content.decode()
    assert RATE_LIMITED in html
    assert INVALID_LOGIN not in html
    assert signed_in_user_id(client) is None


def test_four_failures_do_not_lock_out(client, user):
    for _ in range(4):
        sign_in(client, "alice", "wrong-horse-battery")

    response = sign_in(client, "alice", PASSWORD)

    assert response.status_code == 302
    assert signed_in_user_id(client) == str(user.pk)


def test_the_account_stays_locked_from_another_address(client, user, other_user):
    for _ in range(5):
        sign_in(client, "alice", "wrong-horse-battery", REMOTE_ADDR="203.0.113.7")

    locked = sign_in(client, "alice", PASSWORD, REMOTE_ADDR="198.51.100.20")
    other_account = sign_in(client, "mallory", PASSWORD, REMOTE_ADDR="198.51.100.20")

    assert RATE_LIMITED in locked.content.decode()
    # The per-account limit is per account: mallory, from a clean address, signs in.
    assert other_account.status_code == 302
    assert signed_in_user_id(client) == str(other_user.pk)


def test_the_address_stays_locked_for_another_account(client, user, other_user):
    for _ in range(5):
        sign_in(client, "alice", "wrong-horse-battery", REMOTE_ADDR="203.0.113.7")

    response = sign_in(client, "mallory", PASSWORD, REMOTE_ADDR="203.0.113.7")

    assert RATE_LIMITED in response.content.decode()
    assert signed_in_user_id(client) is None


def test_a_posted_password_is_refused_when_password_auth_is_off(client, user):
    with override_settings(ENABLE_PASSWORD_AUTH=False):
        response = client.post("/accounts/login/", {"login": "alice", "password": PASSWORD})
    assert response.status_code == 200  # the form again, with its error
    assert signed_in_user_id(client) is None
