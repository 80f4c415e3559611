"""Reconcile benchmark: create → RUNNING latency on the local backend, and the cost of one scan tick
with 10 000 steady projects in the tables.

Runs against real services (see bench/_harness.py): a Celery worker with beat, ttyd sandboxes and
per-project PostgreSQL databases. Ends with the lines
    create->RUNNING median: 0.18 s
    scan tick: 3 queries, 2.5 ms (10000 steady projects)
"""

import argparse
import statistics
import time

from _harness import BenchPlatform


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=8, help="projects created one after another (default 8)")
    parser.add_argument("--steady", type=int, default=10_000, help="steady projects in the tables for the scan (default 10000)")
    args = parser.parse_args()

    with BenchPlatform("reconcile") as platform:
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from databases.models import Database
        from fullstackagent.status import ProjectStatus, ResourceStatus
        from projects.tasks import scan_resources
        from projects import services
        from projects.models import Project
        from sandboxes.models import Sandbox

        platform.start_worker()
        user = get_user_model().objects.create_user("bench", password="bench-password-1")

        def wait_for(project, status, timeout=30.0):
            deadline = time.monotonic() + timeout
            while Project.objects.filter(pk=project.pk).values_list("status", flat=True)[0] != status:
                if time.monotonic() > deadline:
                    raise SystemExit(f"project {project.pk} did not reach {status}")
                time.sleep(0.005)

        durations = []
        created = []
        for index in range(args.projects):
            started = time.monotonic()
            project = services.do_create_project(user, name=f"Bench {chr(ord('a') + index % 26)}")
            wait_for(project, ProjectStatus.RUNNING)
            durations.append(time.monotonic() - started)
            created.append(project)
        print(f"create->RUNNING per project: {', '.join(f'{d:.2f}' for d in durations)} s")

        # Steady rows: stopped projects with nothing due, as most rows of a real installation are.
        batch = 2000
        for offset in range(0, args.steady, batch):
            projects = Project.objects.bulk_create(
                [Project(user=user, name=f"Steady {offset + i}", k8s_name="steady", status="STOPPED")
                 for i in range(min(batch, args.steady - offset))]
            )
            Sandbox.objects.bulk_create(
                [Sandbox(project=p, name=f"steady-s-{p.pk}", status=ResourceStatus.STOPPED) for p in projects]
            )
            Database.objects.bulk_create(
                [Database(project=p, name=f"steady-d-{p.pk}", status=ResourceStatus.STOPPED) for p in projects]
            )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        timings = []
        for _ in range(20):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                scan_resources()
                timings.append((time.perf_counter() - started) * 1000)
        query_count = len(queries)

        for project in created:
            services.do_delete_project(Project.objects.get(pk=project.pk))
        for project in created:
            wait_for(project, ProjectStatus.TERMINATED)

        print(f"create->RUNNING median: {statistics.median(durations):.2f} s")
        print(f"scan tick: {query_count} queries, {statistics.median(timings):.1f} ms ({args.steady} steady projects)")


if __name__ == "__main__":
    main()
