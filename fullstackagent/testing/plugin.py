"""pytest plugin (loaded with ``-p`` from pyproject): real services for the test suite.

Before Django reads its settings this plugin
- starts the embedded PostgreSQL (unless DATABASE_URL is set) and gives this run its own test
  database name, so several runs can share one server;
- starts a private Redis server on a free port (unless REDIS_URL is set), so Celery queues of
  concurrent runs never mix;
- points the local sandbox backend at a temporary folder.
Everything it starts is stopped when the run ends.

Under pytest-xdist (``make test`` runs ``-n``) each worker is such a run of its own: its own test
database (pytest-django adds the worker's suffix), Redis, sandbox folder, metrics folder and range
of sandbox uids; the controller, which runs no test, only makes sure PostgreSQL is up.
"""

import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

_started = {}


# What the plugin sets for a run, unless the environment already says. Under xdist each worker sets
# its own: the controller notes which ones the user gave (FSA_TEST_GIVEN), and a worker drops the
# others it inherited (Django's start-up in the controller exports PROMETHEUS_MULTIPROC_DIR).
PER_RUN = (
    "DATABASE_TEST_NAME", "REDIS_URL", "LOCAL_SANDBOX_ROOT", "PROMETHEUS_MULTIPROC_DIR", "LOCAL_SANDBOX_UID_BASE",
    "LOCAL_DATABASE_NAME_PREFIX",
)
# Sandbox uids are LOCAL_SANDBOX_UID_BASE + sandbox id; each xdist worker's test database counts
# sandbox ids from 1, so each worker gets a range of its own.
UIDS_PER_WORKER = 10_000_000


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    _prepare_environment(controller=_is_xdist_controller(early_config))
    return (yield)


def _is_xdist_controller(early_config) -> bool:
    """True in the process that hands tests to xdist workers and runs none itself."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return False
    workers = getattr(early_config.known_args_namespace, "numprocesses", None)
    return bool(workers) and not getattr(early_config.known_args_namespace, "collectonly", False)


def _prepare_environment(controller: bool = False) -> None:
    from fullstackagent.devtools import embedded

    if _started.get("prepared"):
        return
    _started["prepared"] = True
    if not os.environ.get("DATABASE_URL"):
        # Once, before the workers start: they would race to initialise the same server.
        os.environ["DATABASE_URL"] = embedded.postgres().ensure_running()
    if controller:
        os.environ["FSA_TEST_GIVEN"] = ",".join(name for name in PER_RUN if os.environ.get(name))
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker:
        given = os.environ.get("FSA_TEST_GIVEN", "").split(",")
        for name in PER_RUN:
            if name not in given:
                os.environ.pop(name, None)
        index = int(worker.removeprefix("gw"))
        os.environ.setdefault("LOCAL_SANDBOX_UID_BASE", str(200_000 + index * UIDS_PER_WORKER))
    scratch = Path(tempfile.mkdtemp(prefix="fsa-test-"))
    _started["scratch"] = scratch
    os.environ.setdefault("DATABASE_TEST_NAME", f"test_fullstackagent_{os.getpid()}")
    if not os.environ.get("REDIS_URL"):
        port = embedded.free_port()
        # With a password, as `make run`'s: the sandboxes the tests start can reach the port.
        password = secrets.token_urlsafe(16)
        _started["redis"] = embedded.start_redis(scratch / "redis", port, daemonize=False, password=password)
        os.environ["REDIS_URL"] = f"redis://:{password}@127.0.0.1:{port}/0"
    os.environ.setdefault("LOCAL_SANDBOX_ROOT", str(scratch / "sandboxes"))
    # The projects' local databases and roles carry this run's prefix and are dropped at its end:
    # they live on the shared server (`make run`'s too), one for each project a test reconciles.
    if "LOCAL_DATABASE_NAME_PREFIX" not in os.environ:
        os.environ["LOCAL_DATABASE_NAME_PREFIX"] = f"t{secrets.token_hex(3)}_"
        _started["database_prefix"] = True
    # This run's metrics files (fullstackagent.metrics), shared by the web processes and workers it starts.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(scratch / "metrics"))
    os.environ.setdefault("RECONCILE_INTERVAL_SECONDS", "1")
    # PBKDF2's million iterations cost 0.8 s per password on a 2-core machine, and the suite makes
    # hundreds of users. Through the environment so the web and Celery processes it starts agree.
    os.environ.setdefault("PASSWORD_HASHERS", "django.contrib.auth.hashers.MD5PasswordHasher")
    # Tests make many projects for one user; the quota tests set their own limits.
    os.environ.setdefault("QUOTA_PROJECTS", "100000")
    os.environ.setdefault("QUOTA_RUNNING_SANDBOXES", "100000")
    # The fake Kubernetes API servers of the tests listen on 127.0.0.1, which kubeconfigs may not
    # name unless the operator allows it (fullstackagent.kubernetes.kubeconfig).
    os.environ.setdefault("KUBERNETES_ALLOWED_NETWORKS", "127.0.0.0/8")


def pytest_configure(config):
    if config.pluginmanager.hasplugin("django"):
        from fullstackagent.testing import flush

        flush.install()


def pytest_runtest_logfinish(nodeid, location):
    # Noted for flush's report of stray rows; flush is loaded only where Django is (pytest_configure).
    flush = sys.modules.get("fullstackagent.testing.flush")
    if flush is not None:
        flush.previous_test["nodeid"] = nodeid


def pytest_unconfigure(config):
    if "scratch" in _started:
        # Sandboxes the tests left running (their ttyd and tmux processes live outside the test
        # process) end with the run.
        try:
            from sandboxes.backends.local import LocalSandboxBackend

            LocalSandboxBackend().stop_all()
        except Exception as error:  # noqa: BLE001 - Django may not be set up (-p no:django)
            print(f"fullstackagent.testing.plugin: local sandboxes not stopped: {error}")
    if _started.pop("database_prefix", None):
        try:
            from databases.backends.local import LocalDatabaseBackend

            LocalDatabaseBackend().delete_all_prefixed()
        except Exception as error:  # noqa: BLE001 - as above
            print(f"fullstackagent.testing.plugin: this run's local databases not dropped: {error}")
    process = _started.pop("redis", None)
    if process is not None:
        process.terminate()
        process.wait(timeout=10)
    scratch = _started.pop("scratch", None)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


# `make test` runs the serial tests by naming the modules whose source says ``pytest.mark.serial``
# (found with grep: collecting the whole suite again to run nine tests cost about 10 s). A test
# marked any other way would run in neither part of `make test`, so that is refused here.
SERIAL_MARK_IN_SOURCE = "pytest.mark.serial"


def pytest_collection_modifyitems(session, config, items):
    sources = {}
    for item in items:
        if item.get_closest_marker("serial") is None:
            continue
        path = Path(item.path)
        if path not in sources:
            sources[path] = SERIAL_MARK_IN_SOURCE in path.read_text()
        if not sources[path]:
            raise pytest.UsageError(
                f"{item.nodeid} is marked serial, but its module's source does not say {SERIAL_MARK_IN_SOURCE}: "
                "`make test` finds the serial tests by that text (Makefile)"
            )
