"""/healthz and the probe docker-compose's healthcheck runs (python -m fullstackagent.health)."""

import json
import subprocess
import sys
import time

import pytest
from django.core.cache import cache
from django.test import override_settings

from fullstackagent.devtools import embedded
from fullstackagent.health import SCHEDULER_HEARTBEAT_KEY, probe_host
from fullstackagent.testing.processes import PROJECT_ROOT, platform_process_environment, terminate
from projects.tasks import scan_resources


def test_healthy_platform_answers_ok(client, db):
    scan_resources()  # what the beat runs every RECONCILE_INTERVAL_SECONDS

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok", "scheduler": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize("last_scan_age", [None, 16.0, 3600.0])
def test_a_stale_scheduler_is_reported_but_the_web_process_stays_in_rotation(client, db, last_scan_age, settings):
    """Issue 13: nothing noticed a hung or dead beat. /healthz says so; it still answers 200,
    because this web process can serve (RECONCILE_INTERVAL_SECONDS 1 in tests: stale after 15 s)."""
    settings.RECONCILE_INTERVAL_SECONDS = 1
    cache.delete(SCHEDULER_HEARTBEAT_KEY)
    if last_scan_age is not None:
        cache.set(SCHEDULER_HEARTBEAT_KEY, time.time() - last_scan_age, timeout=None)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok", "scheduler": "stale"}


def test_unreachable_redis_answers_503_naming_it(client, db):
    closed_port = embedded.free_port()
    broken_cache = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                "LOCATION": f"redis://127.0.0.1:{closed_port}/0"}}

    with override_settings(CACHES=broken_cache):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "redis": "unavailable", "scheduler": "unavailable"}


def test_healthz_takes_no_writes(client, db):
    assert client.post("/healthz").status_code == 405


@pytest.mark.parametrize(
    "allowed_hosts, host",
    [
        ("agent.example.com,localhost", "agent.example.com"),
        (" , *, agent.example.com", "agent.example.com"),
        (".example.com", "health.example.com"),
        ("*", "localhost"),
        ("", "localhost"),
    ],
)
def test_probe_names_a_host_django_accepts(allowed_hosts, host):
    assert probe_host(allowed_hosts) == host


@pytest.fixture
def production_server(production_env, tmp_path):
    """The web server as docker-compose runs it: DEBUG off, HTTPS redirects on, one allowed host."""
    port = embedded.free_port()
    environment = production_env()
    log = open(tmp_path / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "fullstackagent.server.serve", "--host", "127.0.0.1", "--port", str(port), "--processes", "2"],
        cwd=PROJECT_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not embedded.port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the web server did not start:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
        time.sleep(0.1)
    yield port, environment
    terminate(process)
    log.close()


def run_probe(url, environment):
    return subprocess.run(
        [sys.executable, "-m", "fullstackagent.health", url],
        cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=30,
    )


def test_compose_healthcheck_passes_against_the_production_web_server(production_server):
    port, environment = production_server

    result = run_probe(f"http://127.0.0.1:{port}/healthz", environment)

    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    # No beat runs here; whether another test's worker scanned lately decides the scheduler's value.
    assert (answer.pop("status"), answer.pop("database"), answer.pop("redis")) == ("ok", "ok", "ok")
    assert answer in ({"scheduler": "ok"}, {"scheduler": "stale"})


def test_other_pages_still_redirect_to_https_in_production(production_server):
    import http.client

    port, _ = production_server
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/accounts/login/", headers={"Host": "agent.example.com"})
    response = connection.getresponse()

    assert response.status == 301
    assert response.getheader("Location") == "https://agent.example.com/accounts/login/"


def test_probe_fails_when_nothing_listens(db):
    closed_port = embedded.free_port()

    result = run_probe(f"http://127.0.0.1:{closed_port}/healthz", platform_process_environment())

    assert result.returncode == 1
    assert result.stdout.startswith(f"http://127.0.0.1:{closed_port}/healthz unreachable: ")
