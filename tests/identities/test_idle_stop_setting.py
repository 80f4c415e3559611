"""The user's own idle stop on the Settings page (Agent tab), kept on their UserQuota row where an
operator sees it in the admin."""

import pytest

from identities.models import UserQuota
from sandboxes import idle

pytestmark = pytest.mark.django_db


def test_the_settings_page_shows_the_platforms_default(user, user_client, settings):
    settings.IDLE_STOP_MINUTES = 60

    page = user_client.get("/settings/?tab=agent").content.decode()

    assert 'id="idle-stop-minutes"' in page
    assert "the platform's default (60 minutes)" in page
    assert idle.limit_minutes(user.pk) == 60


def test_a_user_sets_their_own_idle_stop_and_goes_back_to_the_default(user, user_client, settings):
    settings.IDLE_STOP_MINUTES = 60
    UserQuota.objects.create(user=user, max_projects=3)

    response = user_client.post("/settings/idle-stop/", {"idle_stop_minutes": "15", "action": "save"})

    assert response.status_code == 302
    quota = UserQuota.objects.get(user=user)
    assert (quota.idle_stop_minutes, quota.max_projects) == (15, 3)  # the operator's limit kept
    assert idle.limit_minutes(user.pk) == 15
    assert 'value="15"' in user_client.get("/settings/?tab=agent").content.decode()

    assert user_client.post("/settings/idle-stop/", {"idle_stop_minutes": "0"}).status_code == 302
    assert idle.limit_minutes(user.pk) == 0  # never

    assert user_client.post("/settings/idle-stop/", {"action": "reset"}).status_code == 302
    assert UserQuota.objects.get(user=user).idle_stop_minutes is None
    assert idle.limit_minutes(user.pk) == 60


@pytest.mark.parametrize("value", ["-1", "1.5", "ten", "10081"])
def test_a_value_that_is_not_whole_minutes_is_refused(user, user_client, value):
    UserQuota.objects.create(user=user, idle_stop_minutes=30)

    response = user_client.post("/settings/idle-stop/", {"idle_stop_minutes": value})

    assert response.status_code == 400
    assert "Enter whole minutes from 0 (never) to 10080" in response.content.decode()
    assert UserQuota.objects.get(user=user).idle_stop_minutes == 30


def test_operators_see_it_in_the_admin(make_user, client, user):
    UserQuota.objects.create(user=user, idle_stop_minutes=45)
    operator = make_user("operator")
    operator.is_staff = operator.is_superuser = True
    operator.save()
    client.force_login(operator)

    listing = client.get("/admin/identities/userquota/").content.decode()
    form = client.get(f"/admin/identities/userquota/{UserQuota.objects.get(user=user).pk}/change/").content.decode()

    assert "column-idle_stop_minutes" in listing
    assert 'name="idle_stop_minutes" value="45"' in form
