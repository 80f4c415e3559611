"""Local project databases and roles carry LOCAL_DATABASE_NAME_PREFIX: a test run sets its own and
drops everything that carries it when it ends (fullstackagent.testing.plugin), so the runs sharing
the embedded server (and `make run`, whose databases have no prefix) neither meet nor pile up."""

import os
import secrets
import subprocess
import sys

import psycopg
import pytest
from django.conf import settings

from databases.backends.local import LocalDatabaseBackend, local_identifier
from databases.models import Database
from fullstackagent.status import ResourceStatus
from projects import services
from projects.tasks import reconcile_database
from sandboxes.models import Sandbox


def admin():
    return psycopg.connect(settings.LOCAL_DATABASE_ADMIN_URL, autocommit=True)


def existing(names) -> list[tuple[bool, bool]]:
    with admin() as connection:
        return [
            (
                connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None,
                connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone() is not None,
            )
            for name in names
        ]


def running_database(user, name) -> Database:
    project = services.do_create_project(user, name=name)
    Sandbox.objects.filter(project=project).update(status=ResourceStatus.STOPPED)  # not needed here
    database = Database.objects.get(project=project)
    for _ in range(4):
        reconcile_database(database.pk)
    database.refresh_from_db()
    assert database.status == ResourceStatus.RUNNING
    return database


def test_this_runs_databases_carry_its_prefix(transactional_db, user):
    prefix = os.environ["LOCAL_DATABASE_NAME_PREFIX"]
    assert settings.LOCAL_DATABASE_NAME_PREFIX == prefix and prefix.startswith("t")

    database = running_database(user, "Prefixed")

    name = local_identifier(database.name)
    assert name == prefix + database.name.replace("-", "_")
    assert database.connection_url.startswith(f"postgresql://{name}:") and f"/{name}" in database.connection_url
    assert existing([name]) == [(True, True)]
    with psycopg.connect(database.connection_url) as connection:
        assert connection.execute("SELECT current_user, current_database()").fetchone() == (name, name)
    print(f"database={name}")  # read by the next test, which runs this one in a run of its own


def test_a_run_drops_its_databases_when_it_ends(tmp_path):
    from fullstackagent.testing.plugin import PER_RUN

    environment = {
        key: value for key, value in os.environ.items()
        if key not in PER_RUN and not key.startswith(("PYTEST_XDIST", "FSA_TEST_GIVEN"))
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s",
         f"{__file__}::test_this_runs_databases_carry_its_prefix"],
        env=environment, capture_output=True, text=True, cwd=settings.BASE_DIR, timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    name = next(line.split("=", 1)[1] for line in run.stdout.splitlines() if line.startswith("database="))
    assert not name.startswith(settings.LOCAL_DATABASE_NAME_PREFIX)  # that run had a prefix of its own
    assert existing([name]) == [(False, False)]


def test_dropping_a_prefix_takes_its_databases_and_roles_and_nothing_else(transactional_db, user, settings):
    kept = local_identifier(running_database(user, "Kept").name)
    settings.LOCAL_DATABASE_NAME_PREFIX = f"tz{secrets.token_hex(3)}_"
    dropped = [local_identifier(running_database(user, name).name) for name in ("First", "Second")]
    assert existing(dropped) == [(True, True), (True, True)]

    assert LocalDatabaseBackend().delete_all_prefixed() == 2

    assert existing(dropped) == [(False, False), (False, False)]
    assert existing([kept]) == [(True, True)]


def test_without_a_prefix_nothing_is_dropped(settings):
    settings.LOCAL_DATABASE_NAME_PREFIX = ""
    with pytest.raises(ValueError, match="not set"):
        LocalDatabaseBackend().delete_all_prefixed()


@pytest.mark.parametrize("prefix", ["Run1_", "1run_", "run-1_", "t" * 17])
def test_a_prefix_that_would_need_quoting_or_is_too_long_stops_the_start(prefix):
    started = subprocess.run(
        [sys.executable, "-c", "import fullstackagent.settings"],
        env={**os.environ, "LOCAL_DATABASE_NAME_PREFIX": prefix}, capture_output=True, text=True,
        cwd=settings.BASE_DIR,
    )
    assert started.returncode != 0
    assert "LOCAL_DATABASE_NAME_PREFIX is a lowercase letter" in started.stderr
