"""What the benchmarks share: real services (embedded PostgreSQL unless DATABASE_URL, a private
Redis), a throw-away database migrated for the run, and a real Celery worker with beat.

Usage inside a benchmark:
    with BenchPlatform() as platform:   # before importing anything from Django
        ...                             # Django is set up; platform.start_worker() when needed
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))


class BenchPlatform:
    def __init__(self, name: str):
        self.name = f"bench_{name}_{os.getpid()}"
        self.scratch = Path(tempfile.mkdtemp(prefix=f"fsa-{name}-"))
        self.processes: list[subprocess.Popen] = []

    def __enter__(self):
        from urllib.parse import urlsplit, urlunsplit

        import psycopg

        from fullstackagent.devtools import embedded

        admin_url = os.environ.get("DATABASE_URL") or embedded.postgres().ensure_running()
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.name}"')
        self.admin_url = admin_url
        parts = urlsplit(admin_url)
        os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{self.name}"))
        # Per-project databases of the local backend are made through the platform's server.
        os.environ["LOCAL_DATABASE_ADMIN_URL"] = os.environ["DATABASE_URL"]
        redis_port = embedded.free_port()
        self.processes.append(embedded.start_redis(self.scratch / "redis", redis_port, daemonize=False))
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        os.environ["LOCAL_SANDBOX_ROOT"] = str(self.scratch / "sandboxes")
        os.environ["STATE_DIR"] = os.environ.get("STATE_DIR", str(embedded.state_dir()))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fullstackagent.settings")
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        # A benchmark's user makes far more projects than any quota allows.
        os.environ.setdefault("QUOTA_PROJECTS", "1000000")
        os.environ.setdefault("QUOTA_RUNNING_SANDBOXES", "1000000")
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        return self

    def start_worker(self, concurrency: int = 8) -> subprocess.Popen:
        log = open(self.scratch / "worker.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "fullstackagent", "worker", "--beat",
             "--schedule", str(self.scratch / "beat"), "--pool", "threads", "--concurrency", str(concurrency),
             "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=PROJECT_ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        time.sleep(2.0)  # the worker connects and the beat sends its first tick
        return process

    def __exit__(self, *exc):
        from django.db import connections

        from sandboxes.backends.local import LocalSandboxBackend

        LocalSandboxBackend().stop_all()
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        connections.close_all()
        import psycopg

        # Benchmarks delete the projects they create (which drops their databases and roles).
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        import shutil

        shutil.rmtree(self.scratch, ignore_errors=True)
        return False


def production_settings() -> None:
    """The settings production runs with (DEBUG off), for this process and the server it starts.
    Plain HTTP on 127.0.0.1, so no HTTPS redirect; secrets made up for the run."""
    import secrets

    from cryptography.fernet import Fernet

    os.environ.update(
        DEBUG="false",
        SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="127.0.0.1",
        SECRET_KEY=secrets.token_urlsafe(50),
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        LOG_LEVEL="WARNING",
    )
