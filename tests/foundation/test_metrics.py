"""/metrics (issue 16 §4): refused without a token or an allowed network; with one, the named series,
added up over the platform's processes (two web processes, a Celery worker, this test process)."""

import subprocess
import sys
from datetime import timedelta

import pytest
import requests
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from databases.models import Database
from fullstackagent import metrics
from fullstackagent.testing.processes import PlatformServer, wait_for, wait_for_connections_to_close
from projects import services
from projects.models import ResourceEvent
from projects.tasks import reconcile_database
from sandboxes.models import Sandbox

TOKEN = "metrics-token-for-tests"
SERIES = [
    "fullstackagent_reconcile_steps_total",
    "fullstackagent_reconcile_step_duration_seconds_bucket",
    "fullstackagent_reconcile_lag_seconds",
    "fullstackagent_reconcile_due_rows",
    "fullstackagent_resources",
    "fullstackagent_terminals_open",
    "fullstackagent_terminal_relayed_bytes_total",
    "fullstackagent_http_request_duration_seconds_bucket",
    "fullstackagent_idle_stops_total",
]


def parse(text: str) -> dict:
    """{(sample name, frozenset of label pairs): value} of a scrape, read by prometheus-client's parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict, name: str, **labels) -> float | None:
    return scraped.get((name, frozenset(labels.items())))


@pytest.fixture
def platform(transactional_db, tmp_path):
    """The platform's web server (two web processes) with a metrics token and no allowed network."""
    server = PlatformServer(tmp_path, METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS="")
    yield server
    server.stop()
    wait_for_connections_to_close(server.application_name)


def scrape(platform) -> dict:
    response = requests.get(f"{platform.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def test_an_unauthenticated_scrape_is_refused_with_no_series(platform):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
        response = requests.get(f"{platform.url}/metrics", headers=headers, timeout=10)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert "fullstackagent_" not in response.text


def test_a_token_scrape_shows_every_named_series(platform, user):
    # Given two projects (rows CREATING, no worker running), one overdue by half a minute, an idle
    # stop recorded as its event, a request to a route with an id, and one reconcile step.
    first = services.do_create_project(user, name="Metrics One")
    second = services.do_create_project(user, name="Metrics Two")
    Sandbox.objects.filter(project=first).update(next_check_at=timezone.now() - timedelta(seconds=30))
    Sandbox.objects.filter(project=second).update(next_check_at=timezone.now() + timedelta(hours=1))
    sandbox = Sandbox.objects.get(project=first)
    ResourceEvent.objects.create(
        project=first, resource_kind="sandbox", resource_id=sandbox.pk, resource_name=sandbox.name,
        from_status="RUNNING", to_status="STOPPING", cause="idle",
    )
    api_route = dict(route="/api/projects/<int:project_id>", method="GET", status="4xx")
    # Counters add up over this whole test run (one metrics folder): compare with a scrape before.
    requests_before = value(scrape(platform), "fullstackagent_http_request_duration_seconds_count", **api_route) or 0
    assert requests.get(f"{platform.url}/api/projects/{first.pk}", timeout=10).status_code == 401

    scraped = scrape(platform)

    assert value(scraped, "fullstackagent_resources", resource="sandbox", status="CREATING") == 2
    assert value(scraped, "fullstackagent_resources", resource="database", status="CREATING") == 2
    assert value(scraped, "fullstackagent_resources", resource="sandbox", status="RUNNING") == 0
    assert value(scraped, "fullstackagent_reconcile_due_rows", resource="sandbox") == 1
    assert 30 <= value(scraped, "fullstackagent_reconcile_lag_seconds", resource="sandbox") < 60
    assert value(scraped, "fullstackagent_idle_stops_total", resource="sandbox") == 1
    assert value(scraped, "fullstackagent_idle_stops_total", resource="database") == 0
    # Whichever web process answered the API request, the scrape (maybe on the other) counts it, by template.
    assert value(scraped, "fullstackagent_http_request_duration_seconds_count", **api_route) == requests_before + 1
    routes = {dict(labels).get("route") for _name, labels in scraped}
    assert not any(str(first.pk) in (route or "") for route in routes)

    # When a step runs (in this process, as a worker would: it writes its own file).
    step = dict(resource="database", kind="CREATING")
    steps_before = value(scraped, "fullstackagent_reconcile_steps_total", **step, result="ok") or 0
    timed_before = value(scraped, "fullstackagent_reconcile_step_duration_seconds_count", **step) or 0
    reconcile_database(Database.objects.get(project=first).pk)
    scraped = scrape(platform)

    assert set(SERIES) <= {name for name, _labels in scraped}
    assert value(scraped, "fullstackagent_reconcile_steps_total", **step, result="ok") == steps_before + 1
    assert value(scraped, "fullstackagent_reconcile_step_duration_seconds_count", **step) == timed_before + 1


def test_a_step_taken_by_a_worker_is_counted_by_the_web_process(platform, start_celery_worker, user):
    counted = ("fullstackagent_reconcile_steps_total", frozenset(
        {"resource": "database", "kind": "CREATING", "result": "ok"}.items()
    ))
    before = scrape(platform).get(counted, 0)
    start_celery_worker()

    project = services.do_create_project(user, name="Metrics Worker")

    # No step runs in this process: the count that grows is the worker's, read by a web process.
    wait_for(lambda: scrape(platform).get(counted, 0) >= before + 1, timeout=30, message="the worker's step in /metrics")
    assert Database.objects.get(project=project).status != "CREATING"


def test_a_direct_scrape_from_an_allowed_network_needs_no_token(db):
    # The Django test client's address is 127.0.0.1.
    with override_settings(METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS=["127.0.0.0/8"]):
        allowed = Client().get("/metrics")
        through_a_proxy = Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.7")
        forwarded = Client().get("/metrics", HTTP_FORWARDED="for=203.0.113.7")
    with override_settings(METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS=["10.0.0.0/8"]):
        elsewhere = Client().get("/metrics")
    with override_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS=["127.0.0.0/8"]):
        wrong_token = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope")

    assert allowed.status_code == 200
    assert b"fullstackagent_resources" in allowed.content
    assert (through_a_proxy.status_code, forwarded.status_code, elsewhere.status_code) == (403, 403, 403)
    assert wrong_token.status_code == 401
    for refused in (through_a_proxy, forwarded, elsewhere, wrong_token):
        assert b"fullstackagent_" not in refused.content


def test_metrics_are_not_redirected_to_https(db):
    with override_settings(SECURE_SSL_REDIRECT=True, METRICS_TOKEN=TOKEN):
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200


def test_a_dead_process_open_terminals_are_dropped_and_its_counters_kept(tmp_path):
    # Given the files of a process of this host that has exited and of one that still runs.
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for pid in (exited.pid, running.pid):
            for kind in ("gauge_livesum", "counter", "histogram"):
                (tmp_path / f"{kind}_{metrics.HOST}-{pid}.db").write_bytes(b"")
        (tmp_path / f"gauge_livesum_elsewhere-{exited.pid}.db").write_bytes(b"")

        metrics.remove_dead_live_gauges(tmp_path)

        assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
            [f"counter_{metrics.HOST}-{exited.pid}.db", f"histogram_{metrics.HOST}-{exited.pid}.db"]
            + [f"{kind}_{metrics.HOST}-{running.pid}.db" for kind in ("gauge_livesum", "counter", "histogram")]
            + [f"gauge_livesum_elsewhere-{exited.pid}.db"]
        )
    finally:
        running.kill()
        running.wait()


def test_a_forked_process_drops_the_open_terminals_a_dead_process_left_under_its_pid(tmp_path, monkeypatch):
    """A web process forked by serve gets a pid a dead process may have had: its live gauges must start
    at nothing (what it had open is gone), its counters keep adding up (run at each fork)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    own, other = metrics.process_identifier(), f"{metrics.HOST}-1"
    for name in (f"gauge_livesum_{own}.db", f"counter_{own}.db", f"gauge_livesum_{other}.db"):
        (tmp_path / name).write_bytes(b"")

    metrics._after_fork_in_child()

    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([f"counter_{own}.db", f"gauge_livesum_{other}.db"])


@pytest.mark.parametrize(
    "path, route",
    [
        ("/api/projects/12", "/api/projects/<int:project_id>"),
        ("/api/user/config", "/api/user/config"),
        ("/", "/"),
        ("/projects/12/terminal/", "/projects/<int:project_id>/terminal/"),
        # Unknown paths, the API's and the pages', are one series, never one per path.
        ("/api/no-such-route", "(not found)"),
        ("/api/projects/12/no-such-thing", "(not found)"),
        ("/no-such-page", "(not found)"),
    ],
)
def test_requests_are_labelled_by_their_route(path, route):
    from django.test import RequestFactory
    from django.urls import resolve

    request = RequestFactory().get(path)
    request.resolver_match = resolve(path)

    assert metrics.RequestLatencyMiddleware(lambda request: None).route(request) == route
