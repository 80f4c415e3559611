"""The environment a sandbox runs with, assembled from the project, its database and its owner.

Precedence: platform-provided keys (reserved) win over anything a user could set, so a project
variable can never shadow the terminal token or DATABASE_URL.
"""

import hashlib
import json

from identities.models import ConfigKey

# Keys the platform sets; users cannot create project variables with these names.
TERMINAL_TOKEN_KEY = "TTYD_ACCESS_TOKEN"
RESERVED_KEYS = frozenset(
    {
        TERMINAL_TOKEN_KEY,
        "DATABASE_URL",
        "PROJECT_NAME",
        "PORT",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_MODEL",
        "ANTHROPIC_SMALL_FAST_MODEL",
        "FULLSTACKAGENT_SYSTEM_PROMPT",
        "FULLSTACKAGENT_SETTINGS_URL",
        "HOME",
        "PATH",
        "SHELL",
        "USER",
        "TERM",
    }
)
APP_PORT = "3000"

# User settings → sandbox variables. The user's key becomes ANTHROPIC_AUTH_TOKEN, which Claude
# Code reads as a bearer token (works with Aiproxy and direct keys alike).
_USER_CONFIG_TO_ENVIRONMENT = {
    ConfigKey.ANTHROPIC_API_KEY: "ANTHROPIC_AUTH_TOKEN",
    ConfigKey.ANTHROPIC_BASE_URL: "ANTHROPIC_BASE_URL",
    ConfigKey.ANTHROPIC_MODEL: "ANTHROPIC_MODEL",
    ConfigKey.ANTHROPIC_SMALL_FAST_MODEL: "ANTHROPIC_SMALL_FAST_MODEL",
    ConfigKey.SYSTEM_PROMPT: "FULLSTACKAGENT_SYSTEM_PROMPT",
}


def build_environment(
    *,
    project_name: str,
    project_variables: dict[str, str],
    database_url: str,
    user_config: dict[str, str],
    settings_url: str = "",
) -> dict[str, str]:
    """``settings_url``: the platform's Anthropic settings page, which the sandbox's welcome links to
    (runtime/welcome.sh); empty when the platform's public address is not configured."""
    environment = {key: value for key, value in project_variables.items() if key not in RESERVED_KEYS}
    for config_key, variable in _USER_CONFIG_TO_ENVIRONMENT.items():
        if user_config.get(config_key):
            environment[variable] = user_config[config_key]
    if TERMINAL_TOKEN_KEY in project_variables:
        environment[TERMINAL_TOKEN_KEY] = project_variables[TERMINAL_TOKEN_KEY]
    if database_url:
        environment["DATABASE_URL"] = database_url
    if settings_url:
        environment["FULLSTACKAGENT_SETTINGS_URL"] = settings_url
    environment["PROJECT_NAME"] = project_name
    environment["PORT"] = APP_PORT
    return environment


def environment_hash(environment: dict[str, str]) -> str:
    canonical = json.dumps(environment, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
