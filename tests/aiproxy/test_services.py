"""do_provision_anthropic_key: when it asks Aiproxy, what it stores, and that failures store nothing."""

import logging

import pytest
from django.db import connection

from aiproxy.services import do_provision_anthropic_key
from aiproxy.testing import FakeKeyHub
from fullstackagent.encryption import PREFIX
from identities.models import ConfigKey, UserConfig
from identities.services import set_user_config, user_config_map

KUBECONFIG = "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: kube-token-abc\n"
BASE_URL = "https://aiproxy.example/anthropic"

pytestmark = pytest.mark.django_db


@pytest.fixture
def keyhub(settings):
    with FakeKeyHub() as fake:
        settings.AIPROXY_ENDPOINT = fake.url
        settings.ANTHROPIC_BASE_URL = BASE_URL
        settings.AIPROXY_TIMEOUT_SECONDS = 0.5
        yield fake


def provision(user):
    return do_provision_anthropic_key(user, sealos_user_id="u-42", kubeconfig=KUBECONFIG)


def test_a_key_is_stored_encrypted_with_the_base_url(keyhub, user):
    keyhub.answers_with_key("sk-aiproxy-stored")

    assert provision(user) is True

    assert user_config_map(user.pk) == {ConfigKey.ANTHROPIC_API_KEY: "sk-aiproxy-stored", ConfigKey.ANTHROPIC_BASE_URL: BASE_URL}
    row = UserConfig.objects.get(user=user, key=ConfigKey.ANTHROPIC_API_KEY)
    assert row.is_secret is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM identities_userconfig WHERE id = %s", [row.pk])
        stored = cursor.fetchone()[0]
    assert stored.startswith(PREFIX) and "sk-aiproxy-stored" not in stored
    assert [request.json() for request in keyhub.requests] == [{"name": "fullstackagent-u-42", "kc": KUBECONFIG}]


def test_a_user_who_has_a_key_is_not_asked_for_another(keyhub, user):
    set_user_config(user, ConfigKey.ANTHROPIC_API_KEY, "sk-users-own")

    assert provision(user) is False

    assert keyhub.requests == []
    assert user_config_map(user.pk) == {ConfigKey.ANTHROPIC_API_KEY: "sk-users-own"}


@pytest.mark.parametrize("missing", ["AIPROXY_ENDPOINT", "ANTHROPIC_BASE_URL"])
def test_nothing_is_asked_unless_both_settings_are_there(keyhub, user, settings, missing):
    setattr(settings, missing, "")

    assert provision(user) is False

    assert keyhub.requests == []
    assert user_config_map(user.pk) == {}


@pytest.mark.parametrize(
    "failure",
    [
        lambda hub: hub.answers_code(500, "quota"),
        lambda hub: hub.answers_http_status(503),
        lambda hub: hub.hangs(3.0),
        lambda hub: hub.answers_raw(b"not json"),
    ],
    ids=["error-code", "http-503", "timeout", "malformed"],
)
def test_a_failure_stores_nothing_and_logs_no_secret(keyhub, user, caplog, failure):
    failure(keyhub)

    with caplog.at_level(logging.INFO, logger="aiproxy"):
        assert provision(user) is False

    assert user_config_map(user.pk) == {}
    [record] = [record for record in caplog.records if record.name == "aiproxy.services"]
    assert record.levelno == logging.WARNING
    assert f"user {user.pk}" in record.getMessage()
    assert "will ask again" in record.getMessage()
    assert "kube-token-abc" not in caplog.text


def test_after_a_failure_the_next_attempt_stores_the_key(keyhub, user):
    keyhub.answers_code(500)
    provision(user)
    keyhub.answers_with_key("sk-second-time")

    assert provision(user) is True

    assert user_config_map(user.pk)[ConfigKey.ANTHROPIC_API_KEY] == "sk-second-time"
    assert len(keyhub.requests) == 2
