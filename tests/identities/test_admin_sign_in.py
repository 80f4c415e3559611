"""Issue 14, finding 4: the admin's sign-in has the site's failed sign-in limit, shared with it.

/admin/login/ sends everyone to the site's sign-in (allauth, with its rate limits); a password
posted to /admin/login/ is never checked.
"""

import pytest
from django.core.cache import cache

PASSWORD = "correct-horse-battery"
RATE_LIMITED = "Too many failed login attempts. Try again later."


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def operator(make_user):
    user = make_user("olga", PASSWORD)
    user.is_staff = user.is_superuser = True
    user.save()
    return user


def test_the_admin_login_page_sends_to_the_sites_sign_in(client, db):
    response = client.get("/admin/login/?next=/admin/projects/project/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2Fprojects%2Fproject%2F"


def test_a_foreign_next_is_replaced_by_the_admin_index(client, db):
    response = client.get("/admin/login/?next=https://evil.example/")

    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"


def test_thirty_wrong_passwords_posted_to_the_admin_login_sign_in_no_one(client, operator):
    for _ in range(30):
        response = client.post("/admin/login/", {"username": "olga", "password": "wrong-horse-battery"})
        assert response.status_code == 302
    right = client.post("/admin/login/", {"username": "olga", "password": PASSWORD})

    assert right.status_code == 302
    assert right["Location"].startswith("/accounts/login/")
    assert client.session.get("_auth_user_id") is None  # the admin form checks no password at all


def test_failures_count_for_the_account_and_lock_the_operator_out(client, operator):
    for _ in range(5):
        client.post("/accounts/login/?next=/admin/", {"login": "olga", "password": "wrong-horse-battery"})

    locked = client.post("/accounts/login/?next=/admin/", {"login": "olga", "password": PASSWORD})

    assert RATE_LIMITED in locked.content.decode()
    assert client.session.get("_auth_user_id") is None
    assert client.get("/admin/").status_code == 302


def test_an_operator_signed_in_on_the_site_reaches_the_admin(client, operator):
    signed_in = client.post("/accounts/login/?next=/admin/", {"login": "olga", "password": PASSWORD})

    assert signed_in.status_code == 302
    assert signed_in["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/login/?next=/admin/projects/project/")["Location"] == "/admin/projects/project/"


def test_a_signed_in_user_who_is_no_operator_is_told_so_without_a_redirect_loop(user_client):
    response = user_client.get("/admin/login/?next=/admin/")

    assert response.status_code == 403
    assert "No access to the admin" in response.content.decode()
