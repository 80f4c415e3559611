"""Escape tests: real commands typed into a RUNNING local sandbox's terminal through the platform's relay
(the Channels consumer in front of the sandbox's real ttyd), each asserting the refusal the kernel,
PostgreSQL or Redis gave, not just an empty answer."""

import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from databases.models import Database
from fullstackagent.backends import PermanentError
from fullstackagent.devtools import embedded
from fullstackagent.testing.processes import wait_for
from projects import services
from sandboxes.backends import get_sandbox_backend, isolation
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec
from tests.sandboxes.conftest import terminal

def _host_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_sandbox_runs_as_uid_1001_inside_and_an_unprivileged_uid_of_its_own_outside(make_isolated_project, user, other_user):
    first = make_isolated_project(user, "Escape One")
    second = make_isolated_project(other_user, "Escape Two")

    [(output, code)] = terminal(first, user, ["id -u; whoami; echo home=$HOME"])

    assert code == 0
    assert re.search(r"^1001\s*$", output, re.M)
    assert re.search(r"^agent\s*$", output, re.M)
    assert "home=/home/agent" in output
    backend = get_sandbox_backend()
    first_uid = _host_uid(backend.terminal_server_pid(build_spec(Sandbox.objects.get(project=first))))
    second_uid = _host_uid(backend.terminal_server_pid(build_spec(Sandbox.objects.get(project=second))))
    assert first_uid == settings.LOCAL_SANDBOX_UID_BASE + Sandbox.objects.get(project=first).pk
    assert second_uid == settings.LOCAL_SANDBOX_UID_BASE + Sandbox.objects.get(project=second).pk
    assert first_uid != second_uid
    assert not {first_uid, second_uid} & {0, os.geteuid()}


def test_host_files_are_not_there_and_the_system_is_read_only(make_isolated_project, user, other_user):
    project = make_isolated_project(user, "Escape Files")
    other = make_isolated_project(other_user, "Escape Neighbour")
    backend = get_sandbox_backend()
    neighbour_file = backend.workspace(build_spec(Sandbox.objects.get(project=other))) / "private.txt"
    neighbour_file.write_text("the neighbour's work\n")
    secrets_dir = settings.STATE_DIR / "secrets"
    assert any(secrets_dir.iterdir()), "the platform's secret files exist on the host"
    postgres_data = embedded.postgres().data_dir
    sources = Path(settings.BASE_DIR)

    results = terminal(project, user, [
        f"cat {secrets_dir}/*",
        f"ls {neighbour_file.parent}; cat {neighbour_file}",
        f"ls {settings.LOCAL_SANDBOX_ROOT}",
        f"ls {postgres_data}",
        f"ls {sources}/.venv {sources}/fullstackagent",
        "ls /root",
        "touch /usr/escape /etc/escape /escape /opt/escape",
        "touch ~/mine /tmp/mine && echo wrote-both",
    ])

    for output, code in results[:6]:
        assert code != 0, output
        assert "No such file or directory" in output, output
    assert "the neighbour's work" not in results[1][0]
    output, code = results[6]
    assert code != 0
    assert output.count("Read-only file system") + output.count("Permission denied") == 4, output
    assert results[7][1] == 0 and "wrote-both" in results[7][0]
    assert (backend.workspace(build_spec(Sandbox.objects.get(project=project))) / "mine").exists()


def test_platform_processes_and_other_sandboxes_are_invisible_and_unreachable(make_isolated_project, user, other_user):
    project = make_isolated_project(user, "Escape Pids")
    other = make_isolated_project(other_user, "Escape Other Pids")
    other_token = build_spec(Sandbox.objects.get(project=other)).environment["TTYD_ACCESS_TOKEN"]
    platform_pid = os.getpid()

    results = terminal(project, user, [
        "ps -eo pid,args --no-headers | wc -l; ps -eo args --no-headers",
        f"cat /proc/{platform_pid}/environ",
        f"kill -9 {platform_pid}",
    ])

    output, code = results[0]
    assert code == 0
    assert other_token not in output
    assert "celery" not in output and "pytest" not in output and "postgres" not in output
    process_count = int(re.search(r"^\s*(\d+)\s*$", output, re.M).group(1))
    assert process_count < 15, output  # bwrap, the entrypoint, ttyd, tmux, shells, ps: its own only
    assert results[1][1] != 0 and "No such file or directory" in results[1][0]
    assert results[2][1] != 0 and "No such process" in results[2][0]
    assert os.path.exists(f"/proc/{platform_pid}")  # the test process is alive, obviously: it was not hit


def test_redis_and_postgres_refuse_the_sandbox(make_isolated_project, user, other_user):
    project = make_isolated_project(user, "Escape Services")
    other = make_isolated_project(other_user, "Escape Other Database")
    redis_port = urlsplit(settings.REDIS_URL).port
    database_url = Database.objects.get(project=project).connection_url
    own = urlsplit(database_url)
    other_database = urlsplit(Database.objects.get(project=other).connection_url).path.lstrip("/")
    platform_database = connection.settings_dict["NAME"]

    def psql(database):
        url = f"postgresql://{own.username}:{own.password}@{own.hostname}:{own.port}/{database}"
        return f"psql '{url}' -Atc 'select 42' 2>&1"

    results = terminal(project, user, [
        f"exec 3<>/dev/tcp/127.0.0.1/{redis_port}; printf 'PING\\r\\n' >&3; timeout 2 head -c 60 <&3; exec 3<&-",
        psql(platform_database),
        psql("postgres"),
        psql("template1"),
        psql(other_database),
        # Each answer behind a label: tmux redraws its status line (with its clock) when the minute
        # changes, and in the escape-free stream that text can land on the same line.
        'answer=$(psql "$DATABASE_URL" -Atc "select 6*7") && echo "answer=$answer"',
        "echo \"found=$(env | grep -c -i -E 'SECRET_KEY|FIELD_ENCRYPTION|LOCAL_DATABASE_ADMIN|REDIS_URL')\"",
    ])

    assert "NOAUTH" in results[0][0], results[0][0]
    assert "PONG" not in results[0][0]
    for output, code in results[1:5]:
        assert code != 0, output
        assert "permission denied for database" in output, output
        assert not re.search(r"^42\s*$", output, re.M)
    assert results[5][1] == 0 and re.search(r"answer=42\s*$", results[5][0], re.M)
    assert re.search(r"found=0\s*$", results[6][0], re.M), results[6][0]


def test_a_fork_bomb_stays_inside_its_limit(make_isolated_project, user, other_user, settings):
    settings.LOCAL_SANDBOX_MAX_PROCESSES = 64
    bomb = make_isolated_project(user, "Fork Bomb")
    neighbour = make_isolated_project(other_user, "Quiet Neighbour")
    backend = get_sandbox_backend()
    bomb_spec = build_spec(Sandbox.objects.get(project=bomb))
    [pids_folder] = [folder for folder in isolation.cgroup_dirs(bomb_spec.name) if "/pids/" in str(folder)]
    assert (pids_folder / "pids.max").read_text().strip() == "64"
    assert int((pids_folder.parent.parent.parent / "memory" / isolation.CGROUP_PARENT / bomb_spec.name
                / "memory.limit_in_bytes").read_text()) == settings.LOCAL_SANDBOX_MEMORY_MB * 1024 * 1024

    # Started in the background so the terminal answers; it forks until the limit refuses.
    [(_, code)] = terminal(bomb, user, ["{ (bomb() { bomb | bomb & }; bomb) >/dev/null 2>&1 & }"])
    assert code == 0
    wait_for(lambda: int((pids_folder / "pids.events").read_text().split()[1]) > 0, timeout=20,
             message="the process limit to refuse a fork")
    assert int((pids_folder / "pids.current").read_text()) <= 64

    # Meanwhile the platform and another sandbox answer.
    started = time.monotonic()
    [(output, code)] = terminal(neighbour, other_user, ["echo neighbour-$((20+22))"])
    assert code == 0 and "neighbour-42" in output
    assert time.monotonic() - started < 15
    assert Client().get("/healthz").status_code == 200

    # Stop ends every process of the bomb, the limit's cgroup too.
    backend.stop(bomb_spec)
    assert backend.processes(bomb_spec) == []
    assert not pids_folder.exists()


def test_without_bubblewrap_sandboxes_refuse_to_start_and_say_how_to_fix_it(transactional_db, user, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no bwrap to be found
    isolation.problem.cache_clear()
    project = services.do_create_project(user, name="No Bubble")
    spec = build_spec(Sandbox.objects.get(project=project))
    try:
        with pytest.raises(PermanentError) as refusal:
            get_sandbox_backend().create(spec)
    finally:
        isolation.problem.cache_clear()

    assert str(refusal.value) == (
        "Local sandboxes run isolated with bubblewrap, but `bwrap` is not installed; install the Debian package "
        "`bubblewrap` (make system-deps does). For one developer on their own machine only, "
        "LOCAL_SANDBOX_ISOLATION=off runs sandboxes unisolated as the platform's user."
    )
    assert get_sandbox_backend().processes(spec) == []


def test_isolation_off_runs_the_sandbox_as_the_platforms_user(transactional_db, user, settings):
    settings.LOCAL_SANDBOX_ISOLATION = "off"
    project = services.do_create_project(user, name="Single Dev")
    backend = get_sandbox_backend()
    spec = build_spec(Sandbox.objects.get(project=project))
    try:
        backend.create(spec)
        Sandbox.objects.filter(project=project).update(status="RUNNING")
        [(output, code)] = terminal(project, user, ["id -u; echo home=$HOME"])
    finally:
        backend.delete(spec)

    assert code == 0
    assert re.search(rf"^{os.geteuid()}\s*$", output, re.M)
    assert f"home={backend.workspace(spec)}" in output
