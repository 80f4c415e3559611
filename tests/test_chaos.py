"""Issue 13's bounded chaos test against the real stack: a Celery worker with its beat, Redis,
PostgreSQL and the local backend. While projects are created, stopped and started, Redis is
stopped and restarted three times, then PostgreSQL is cut once, then the worker is SIGKILLed (and
started again, as its supervisor would). Afterwards every project converges to its desired state
with exactly one terminal, one database and one role, and the worker never exited on its own.

Redis is a private server of this test; PostgreSQL is reached through a TCP proxy whose cut is
what clients see when the server dies (the suite's server itself stays up for everyone else)."""


import psycopg
import pytest
from django.conf import settings
from django.utils import timezone

from databases.backends.local import local_identifier
from databases.models import Database
from fullstackagent.status import ProjectStatus
from fullstackagent.testing.faults import PrivateRedis, TcpProxy
from fullstackagent.testing.processes import database_url_for_tests, wait_for
from projects import services
from projects.models import Project
from sandboxes.backends.local import ttyd_processes
from sandboxes.models import Sandbox


@pytest.fixture
def chaos(transactional_db, tmp_path):
    database = settings.DATABASES["default"]
    proxy = TcpProxy(database["HOST"], database["PORT"])
    redis = PrivateRedis(tmp_path / "redis")
    through_proxy = database_url_for_tests().replace(
        f"@{database['HOST']}:{database['PORT']}/", f"@127.0.0.1:{proxy.port}/"
    )
    environment = {
        "REDIS_URL": redis.url,
        "DATABASE_URL": through_proxy,
        "LOCAL_DATABASE_ADMIN_URL": settings.LOCAL_DATABASE_ADMIN_URL,
        "RECONCILE_LEASE_SECONDS": 2,
        "RECONCILE_DRIFT_CHECK_SECONDS": 1,
    }
    yield proxy, redis, environment
    redis.stop()
    proxy.cut()
    from django.db import connection

    # The backends the cut left behind (their clients gone) would keep the test database from
    # being flushed: end them, as a dead server would have. Only those that came through the
    # proxy: the run's platform server (live_platform) keeps its pooled sessions for later tests.
    connection.close()
    if connection.pool:
        connection.close_pool()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND client_port = ANY(%s)",
            [sorted(proxy.upstream_ports)],
        )


def test_projects_converge_through_redis_postgres_and_worker_failures(chaos, start_celery_worker, user):
    proxy, redis, environment = chaos
    # Per-task log lines on: they show the work in flight.
    environment = {**environment, "WORKER_TASK_LOG_LEVEL": "INFO"}
    worker = start_celery_worker(name="chaos-1", environment=environment)
    desired = {}

    def act(index, action):
        project = Project.objects.get(pk=projects[index].pk)
        try:
            {"stop": services.do_stop_project, "start": services.do_start_project}[action](project)
            desired[project.pk] = ProjectStatus.STOPPED if action == "stop" else ProjectStatus.RUNNING
        except services.ActionNotAllowed:
            pass  # e.g. start while still creating: the project keeps its previous desired state

    projects = [services.do_create_project(user, name=f"Chaos {letter}") for letter in "abcdef"]
    desired.update({project.pk: ProjectStatus.RUNNING for project in projects})

    for blip in range(3):
        log_size = len(worker.output())
        wait_for(lambda: "reconcile_" in worker.output()[log_size:], message="reconcile work in flight")
        redis.stop()
        wait_for(lambda: "Connection to broker lost" in worker.output()[log_size:], message="the worker to notice")
        act(blip, "stop")  # changes while the broker is down
        redis.start()
        wait_for(lambda: worker.output().count("] Connected to ") > blip + 1, timeout=30, message="the reconnect")
        assert worker.process.poll() is None, worker.output()[-4000:]
        act(blip + 3, "stop")

    log_size = len(worker.output())
    proxy.cut()
    wait_for(lambda: "connection" in worker.output()[log_size:].lower(), message="the worker to meet the outage")
    act(0, "start")
    act(3, "start")
    proxy.restore()

    assert worker.process.poll() is None, "the worker exited on its own:\n" + worker.output()[-4000:]
    worker.kill()
    survivor = start_celery_worker(name="chaos-2", environment=environment)

    def terminals_expected(project) -> int:
        return 1 if desired[project.pk] == ProjectStatus.RUNNING else 0

    def converged():
        # A sandbox whose terminal went down with the killed worker (one it was starting) still
        # shows RUNNING until the next drift check restarts it: convergence includes the processes.
        current = dict(Project.objects.filter(pk__in=desired).values_list("pk", "status"))
        return current == desired and all(
            len(ttyd_processes(Sandbox.objects.get(project=project).name)) == terminals_expected(project)
            for project in projects
        )

    try:
        wait_for(converged, timeout=90, interval=0.2, message=f"every project to converge to {desired}")
    except pytest.fail.Exception:
        # What did not converge, for whoever reads the failure.
        state = [
            (s.project_id, s.status, s.last_error[:120], len(ttyd_processes(s.name)), s.next_check_at, s.locked_until)
            for s in Sandbox.objects.filter(project__in=projects).order_by("project_id")
        ]
        state += list(Database.objects.filter(project__in=projects).values_list("project_id", "status", "last_error"))
        now = timezone.now()
        lines = [line for line in (worker.output() + survivor.output()).splitlines() if "sandbox" in line and "->" in line]
        projects_now = dict(Project.objects.filter(pk__in=desired).values_list("pk", "status"))
        raise AssertionError(
            f"not converged to {desired} at {now}: projects {projects_now}, resources {state}\n" + "\n".join(lines[-40:]) + f"\n{survivor.output()[-3000:]}"
        ) from None
    # One database and one role per project whose database was ever created; never two. A project
    # stopped while still creating may have none yet (its start creates it), or one whose URL was
    # never recorded (the create step landed in PostgreSQL, and the stop won over its result: the
    # next start sets the role's password and records the URL). Never a role without its database.
    with psycopg.connect(settings.LOCAL_DATABASE_ADMIN_URL) as connection:
        for project in projects:
            database = Database.objects.get(project=project)
            name = local_identifier(database.name)
            found = (
                connection.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", [name]).fetchone()[0],
                connection.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name]).fetchone()[0],
            )
            if database.connection_url or desired[project.pk] == ProjectStatus.RUNNING:
                assert found == (1, 1), (project.name, database.status)
            else:
                assert found in ((0, 0), (1, 1)), (project.name, database.status, found)
    assert survivor.process.poll() is None
    assert "Unrecoverable error" not in worker.output() + survivor.output()
