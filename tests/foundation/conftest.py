import secrets

import pytest
from cryptography.fernet import Fernet

from fullstackagent.testing.processes import platform_process_environment


def production_environment(**extra) -> dict:
    """What docker-compose.yml gives the platform, with its secrets as plain variables, pointed at
    this run's test database and Redis."""
    settings = {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "agent.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://agent.example.com",
        "SANDBOX_BACKEND": "kubernetes",
        "BEHIND_TLS_PROXY": "true",
        "TRUSTED_PROXY_COUNT": "1",
    }
    environment = platform_process_environment(**{**settings, **extra})
    # The variables that make an embedded or test setup must not leak into a production check.
    for name in ("STATE_DIR", "LOCAL_SANDBOX_ROOT", "RECONCILE_INTERVAL_SECONDS", "QUOTA_PROJECTS", "QUOTA_RUNNING_SANDBOXES",
                 "KUBERNETES_ALLOWED_NETWORKS"):
        environment.pop(name, None)
    return environment


@pytest.fixture
def production_env(db):
    """A factory: production_env(NAME=value, ...) gives a production process environment."""
    return production_environment
