"""Production readiness of the settings: `check --deploy` is clean with production configuration,
and the models match their migrations."""

import secrets
import subprocess
import sys

from cryptography.fernet import Fernet

from fullstackagent.testing.processes import PROJECT_ROOT, platform_process_environment


def manage(*args, environment) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings(production_env):
    result = manage("check", "--deploy", "--fail-level", "WARNING", environment=production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


def test_production_settings_refuse_to_start_without_their_secrets(production_env):
    environment = production_env()
    environment.pop("SECRET_KEY")

    result = manage("check", environment=environment)

    assert result.returncode == 1
    assert "django.core.exceptions.ImproperlyConfigured: SECRET_KEY must be set when DEBUG is false" in result.stderr


def test_production_settings_refuse_to_start_without_an_encryption_key(production_env):
    environment = production_env()
    environment.pop("FIELD_ENCRYPTION_KEYS")

    result = manage("check", environment=environment)

    assert result.returncode == 1
    assert (
        "django.core.exceptions.ImproperlyConfigured: FIELD_ENCRYPTION_KEYS must be set when DEBUG is false"
        in result.stderr
    )


def test_secrets_are_read_from_files(production_env, tmp_path):
    (tmp_path / "secret_key").write_text(secrets.token_urlsafe(50) + "\n")
    (tmp_path / "field_encryption_keys").write_text(Fernet.generate_key().decode() + "\n")
    environment = production_env(
        SECRET_KEY_FILE=tmp_path / "secret_key", FIELD_ENCRYPTION_KEYS_FILE=tmp_path / "field_encryption_keys"
    )
    del environment["SECRET_KEY"], environment["FIELD_ENCRYPTION_KEYS"]

    result = manage("check", "--deploy", "--fail-level", "WARNING", environment=environment)

    assert result.returncode == 0, result.stdout + result.stderr


def test_a_typo_in_production_configuration_stops_the_process(production_env):
    result = manage("check", environment=production_env(SANDBOX_BACKEND="kubernets"))

    assert result.returncode == 1
    assert "SANDBOX_BACKEND='kubernets' must be one of local, kubernetes" in result.stderr


def test_models_match_their_migrations(db):
    result = manage("makemigrations", "--check", "--dry-run", environment=platform_process_environment())

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "No changes detected"
