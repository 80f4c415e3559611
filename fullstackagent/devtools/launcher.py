"""`make run`: the whole platform on this machine, on its embedded defaults.

Starts the embedded PostgreSQL and Redis (unless DATABASE_URL / REDIS_URL are set), migrates,
then runs the web server (fullstackagent.server.serve: uvicorn processes for HTTP and websockets), a
Celery worker and Celery beat as child processes, each in its own process group. A child that
exits is restarted with a backoff while the others, and the users' sandboxes, keep running
(fullstackagent.server.supervise); one that keeps failing makes the launcher stop everything and exit 1.
Ctrl-C (or SIGTERM) stops all of them, the local sandboxes' terminal processes and the embedded
servers, leaving no process behind, and exits 0; the data stays under the state folder and the
next run picks it up (running sandboxes are restarted by the reconcilers).
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from fullstackagent.devtools import embedded
from fullstackagent.server import supervise


def _spawn(command: list[str], environment: dict) -> subprocess.Popen:
    return subprocess.Popen(command, env=environment, cwd=embedded.PROJECT_ROOT, start_new_session=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fullstackagent.devtools.launcher",
        description="Run FullstackAgent on this machine: embedded PostgreSQL and Redis (unless DATABASE_URL / "
        "REDIS_URL are set), migrations, the web server (uvicorn), a Celery worker and beat. Ctrl-C stops everything.",
    )
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="address the web server binds (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")), help="the web server's port (default 8000)")
    args = parser.parse_args(argv)

    environment = dict(os.environ)
    # Servers that were already running (another `make run`, a test run) are left running at exit.
    postgres_was_running = embedded.postgres().running_now()
    redis_was_running = embedded.redis().running_now()
    environment.update(embedded.ensure_services())
    environment.setdefault("DJANGO_SETTINGS_MODULE", "fullstackagent.settings")
    environment.setdefault("PUBLIC_URL", f"http://{args.host}:{args.port}")
    # The metrics files of every process below (fullstackagent.metrics), emptied so that this run's
    # counters start from zero instead of adding up the files of every earlier run's processes.
    metrics_dir = Path(environment.get("PROMETHEUS_MULTIPROC_DIR") or embedded.state_dir() / "metrics").resolve()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    environment["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--no-input"], env=environment, cwd=embedded.PROJECT_ROOT, check=True)

    def program(name: str, command: list[str]) -> supervise.Child:
        return supervise.Child(name, lambda: _spawn(command, environment))

    children = [
        # One web process per CPU on one port (WEB_PROCESSES; fullstackagent.server.serve).
        program("web server", [python, "-m", "fullstackagent.server.serve", "--host", args.host, "--port", str(args.port)]),
        program("celery worker", [python, "-m", "celery", "-A", "fullstackagent", "worker", "--pool", "threads",
                                  "--concurrency", "8", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]),
        program("celery beat", [python, "-m", "celery", "-A", "fullstackagent", "beat", "--loglevel", "INFO",
                                "--schedule", str(embedded.state_dir() / "celerybeat-schedule")]),
    ]
    print(f"\n  FullstackAgent is running: open http://{args.host}:{args.port}/  (Ctrl-C stops it)\n", flush=True)
    exit_code = 1
    try:
        exit_code = supervise.supervise(children, interval=0.3)
    finally:
        supervise.stop_children(children, process_groups=True)
        subprocess.run(
            [python, "manage.py", "stop_local_sandboxes"], env=environment, cwd=embedded.PROJECT_ROOT, check=False
        )
        if not os.environ.get("REDIS_URL") and not redis_was_running:
            embedded.redis().stop()
        if not os.environ.get("DATABASE_URL") and not postgres_was_running:
            embedded.postgres().stop()
        print("stopped" if exit_code == 0 else "stopped after giving up on a process (see above)", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
