"""Secrets at rest: the column holds a Fernet token, the model gives the clear value, a missing key
fails with a clear error, and rotate_encryption_keys moves every value to the current key."""

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from databases.models import Database
from fullstackagent.encryption import PREFIX, SecretDecryptionError, encrypt
from identities.models import IdentityProvider, UserConfig, UserIdentity
from projects.models import Environment, EnvironmentCategory, Project

STRIPE_SECRET = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
ANTHROPIC_KEY = "sk-ant-api03-clear-value-never-in-the-column"
CONNECTION_URL = "postgresql://blog_owner:Pa55-w0rd-in-url@db.internal:5432/blog"
GITHUB_TOKEN = "gho_16C7e42F292c6912E7710c838347Ae178B4a"

WRONG_KEY_MESSAGE = (
    "cannot decrypt a stored secret with the configured FIELD_ENCRYPTION_KEYS: the key that encrypted it "
    "is missing (add the old key after the new one, then run rotate_encryption_keys)"
)


def raw_column(table: str, column: str, pk: int) -> str:
    """What PostgreSQL itself holds, read around the ORM (no from_db_value)."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}" FROM "{table}" WHERE id = %s', [pk])
        return cursor.fetchone()[0]


@pytest.fixture
def secrets_at_rest(user):
    """One row of every encrypted column, each holding a known clear secret."""
    project = Project.objects.create(user=user, name="My Blog", k8s_name="myblog")
    variable = Environment.objects.create(
        project=project,
        key="STRIPE_SECRET_KEY",
        value=STRIPE_SECRET,
        category=EnvironmentCategory.SECRET,
        is_secret=True,
    )
    config = UserConfig.objects.create(user=user, key="ANTHROPIC_API_KEY", value=ANTHROPIC_KEY, is_secret=True)
    database = Database.objects.create(project=project, name="myblog-agentruntime-x1y2z3", connection_url=CONNECTION_URL)
    identity = UserIdentity.objects.create(
        user=user,
        provider=IdentityProvider.GITHUB,
        provider_user_id="583231",
        metadata={"login": "alice-gh", "access_token": GITHUB_TOKEN},
    )
    return {
        "variable": variable,
        "config": config,
        "database": database,
        "identity": identity,
        "password_identity": UserIdentity.objects.get(user=user, provider=IdentityProvider.PASSWORD),
    }


def test_environment_value_is_ciphertext_in_the_column(secrets_at_rest):
    variable = secrets_at_rest["variable"]

    stored = raw_column("projects_environment", "value", variable.pk)

    assert stored.startswith(PREFIX)
    assert STRIPE_SECRET not in stored
    assert Environment.objects.get(pk=variable.pk).value == STRIPE_SECRET


def test_user_config_value_is_ciphertext_in_the_column(secrets_at_rest):
    config = secrets_at_rest["config"]

    stored = raw_column("identities_userconfig", "value", config.pk)

    assert stored.startswith(PREFIX)
    assert ANTHROPIC_KEY not in stored
    assert UserConfig.objects.get(pk=config.pk).value == ANTHROPIC_KEY


def test_database_connection_url_is_ciphertext_in_the_column(secrets_at_rest):
    database = secrets_at_rest["database"]

    stored = raw_column("databases_database", "connection_url", database.pk)

    assert stored.startswith(PREFIX)
    assert "Pa55-w0rd-in-url" not in stored
    assert "blog_owner" not in stored
    assert Database.objects.get(pk=database.pk).connection_url == CONNECTION_URL


def test_identity_metadata_is_one_ciphertext_in_the_column(secrets_at_rest):
    identity = secrets_at_rest["identity"]

    stored = raw_column("identities_useridentity", "metadata", identity.pk)

    assert stored.startswith(PREFIX)
    assert GITHUB_TOKEN not in stored
    assert "access_token" not in stored
    assert UserIdentity.objects.get(pk=identity.pk).metadata == {"login": "alice-gh", "access_token": GITHUB_TOKEN}


def test_two_encryptions_of_one_value_differ(secrets_at_rest):
    # Fernet uses a fresh IV each time: equal secrets are not recognisable as equal in the column.
    assert encrypt(STRIPE_SECRET) != encrypt(STRIPE_SECRET)


def test_empty_value_is_stored_empty(user):
    config = UserConfig.objects.create(user=user, key="SYSTEM_PROMPT", value="")

    assert raw_column("identities_userconfig", "value", config.pk) == ""
    assert UserConfig.objects.get(pk=config.pk).value == ""


def test_wrong_key_gives_a_clear_error(secrets_at_rest):
    config = secrets_at_rest["config"]

    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        with pytest.raises(SecretDecryptionError) as error:
            UserConfig.objects.get(pk=config.pk)

    assert str(error.value) == WRONG_KEY_MESSAGE


def test_wrong_key_on_json_metadata_gives_the_same_error(secrets_at_rest):
    identity = secrets_at_rest["identity"]

    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        with pytest.raises(SecretDecryptionError) as error:
            UserIdentity.objects.get(pk=identity.pk)

    assert str(error.value) == WRONG_KEY_MESSAGE


def _all_clear_values():
    """Every secret read back through the models, as the platform sees them."""
    return {
        "variable": Environment.objects.get(key="STRIPE_SECRET_KEY").value,
        "config": UserConfig.objects.get(key="ANTHROPIC_API_KEY").value,
        "database": Database.objects.get().connection_url,
        "identity": UserIdentity.objects.get(provider=IdentityProvider.GITHUB).metadata["access_token"],
    }


EXPECTED_CLEAR = {
    "variable": STRIPE_SECRET,
    "config": ANTHROPIC_KEY,
    "database": CONNECTION_URL,
    "identity": GITHUB_TOKEN,
}


def _raw_columns(rows) -> dict[str, str]:
    return {
        "variable": raw_column("projects_environment", "value", rows["variable"].pk),
        "config": raw_column("identities_userconfig", "value", rows["config"].pk),
        "database": raw_column("databases_database", "connection_url", rows["database"].pk),
        "identity": raw_column("identities_useridentity", "metadata", rows["identity"].pk),
        "password_identity": raw_column("identities_useridentity", "metadata", rows["password_identity"].pk),
    }


def test_rotation_re_encrypts_everything_under_the_new_key(secrets_at_rest):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    before = _raw_columns(secrets_at_rest)
    output = StringIO()

    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key, old_key]):
        call_command("rotate_encryption_keys", stdout=output)

    lines = output.getvalue().splitlines()
    assert "identities_useridentity.metadata: re-encrypted 2, already under the current key 0, empty 0" in lines
    assert "identities_userconfig.value: re-encrypted 1, already under the current key 0, empty 0" in lines
    assert "projects_environment.value: re-encrypted 1, already under the current key 0, empty 0" in lines
    assert "databases_database.connection_url: re-encrypted 1, already under the current key 0, empty 0" in lines
    assert lines[-1] == "Total: re-encrypted 5, already under the current key 0, empty 0, undecryptable 0"
    after = _raw_columns(secrets_at_rest)
    assert all(after[name] != before[name] and after[name].startswith(PREFIX) for name in before)
    # The new key alone now reads everything; the old key alone reads nothing.
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key]):
        assert _all_clear_values() == EXPECTED_CLEAR
        assert UserIdentity.objects.get(provider=IdentityProvider.PASSWORD).metadata == {"username": "alice"}
    with override_settings(FIELD_ENCRYPTION_KEYS=[old_key]):
        with pytest.raises(SecretDecryptionError):
            UserConfig.objects.get(key="ANTHROPIC_API_KEY")


def test_rotation_twice_leaves_current_values_alone(secrets_at_rest):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key, old_key]):
        call_command("rotate_encryption_keys", stdout=StringIO())
        first = _raw_columns(secrets_at_rest)
        output = StringIO()
        call_command("rotate_encryption_keys", stdout=output)

    assert _raw_columns(secrets_at_rest) == first
    assert output.getvalue().splitlines()[-1] == (
        "Total: re-encrypted 0, already under the current key 5, empty 0, undecryptable 0"
    )


def test_rotation_dry_run_writes_nothing(secrets_at_rest):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    before = _raw_columns(secrets_at_rest)
    output = StringIO()

    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key, old_key]):
        call_command("rotate_encryption_keys", "--dry-run", stdout=output)

    assert _raw_columns(secrets_at_rest) == before
    assert output.getvalue().splitlines()[-1] == (
        "Total: would re-encrypt 5, already under the current key 0, empty 0, undecryptable 0 (dry run: nothing written)"
    )
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key]):
        with pytest.raises(SecretDecryptionError):
            UserConfig.objects.get(key="ANTHROPIC_API_KEY")


def test_rotation_names_the_row_no_key_decrypts_and_rotates_the_rest(secrets_at_rest, user):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    lost_key = Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[lost_key]):
        orphan = UserConfig.objects.create(user=user, key="KUBECONFIG", value="apiVersion: v1", is_secret=True)
    orphan_stored = raw_column("identities_userconfig", "value", orphan.pk)
    output = StringIO()

    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key, old_key]):
        with pytest.raises(CommandError) as error:
            call_command("rotate_encryption_keys", stdout=output, batch_size=2)

    assert str(error.value) == (
        "1 stored value(s) cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS and were left unchanged; "
        "add the key that encrypted them (after the current one) and run again:\n"
        f"  identities_userconfig.value id={orphan.pk}: no configured key decrypts it"
    )
    assert output.getvalue().splitlines()[-1] == (
        "Total: re-encrypted 5, already under the current key 0, empty 0, undecryptable 1"
    )
    assert raw_column("identities_userconfig", "value", orphan.pk) == orphan_stored
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key]):
        assert _all_clear_values() == EXPECTED_CLEAR


def test_rotation_counts_empty_values(user):
    UserConfig.objects.create(user=user, key="SYSTEM_PROMPT", value="")
    output = StringIO()

    call_command("rotate_encryption_keys", stdout=output)

    assert "identities_userconfig.value: re-encrypted 0, already under the current key 0, empty 1" in (
        output.getvalue().splitlines()
    )


def test_rotation_help_names_the_procedure():
    from identities.management.commands.rotate_encryption_keys import Command

    parser = Command().create_parser("manage.py", "rotate_encryption_keys")
    help_text = " ".join(parser.format_help().split())

    assert "under the first key of FIELD_ENCRYPTION_KEYS" in help_text
    assert "FIELD_ENCRYPTION_KEYS=<new>,<old>" in help_text
    assert "--dry-run Decrypt and count everything, write nothing." in help_text
