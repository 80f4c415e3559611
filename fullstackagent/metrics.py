"""Metrics for operators: the series platform processes record, for /metrics (README "Metrics").

Several processes record them: the web processes of fullstackagent.server.serve (HTTP latency, terminal relays)
and the Celery workers (reconcile steps). prometheus-client's multiprocess mode keeps each
process's samples in memory-mapped files of its own under METRICS_DIR, and /metrics
(fullstackagent.metrics_endpoint) adds up the files of every process, those of exited processes
included, so a counter does not go down when a worker restarts. Files are named by host and pid:
containers sharing the folder through a volume (docker-compose.yml) never write to one file.

State kept in the database (resources by status, scheduling lag, idle stops) is not recorded here
but read when scraped (settings.METRICS_COLLECTORS).
"""

import logging
import os
import re
import socket
import time
from pathlib import Path

from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram, values

logger = logging.getLogger(__name__)

# The host part of each file's name ("_" separates the parts prometheus-client reads back).
HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"
# gauge_livesum_<host>-<pid>.db: the files of gauges that count only living processes.
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(?P<host>.+)-(?P<pid>\d+)\.db$")


def process_identifier() -> str:
    # Called on every update (prometheus-client compares it to notice a fork): keep it cheap.
    return f"{HOST}-{os.getpid()}"


def directory() -> Path | None:
    """The folder of the samples files, or None when this process keeps its samples in memory."""
    raw = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(raw) if raw else None


def remove_dead_live_gauges(folder: Path, *, own_pid_too: bool = False) -> None:
    """Drops the live-gauge files of processes of this host that are gone (a web process restarted, or
    SIGKILLed with terminals open): what they counted is no longer open. Counters stay: they are
    totals. Files of other hosts are left to those hosts."""
    for path in folder.glob("gauge_live*.db"):
        match = _LIVE_GAUGE_FILE.match(path.name)
        if match is None or match["host"] != HOST:
            continue
        pid = int(match["pid"])
        if pid == os.getpid():
            # Only at start-up, before this process made a gauge: the file is a dead process's
            # whose pid this one was given again, and its values must not become ours.
            if not own_pid_too:
                continue
        else:
            try:
                os.kill(pid, 0)
                continue
            except PermissionError:
                continue  # alive, another user's
            except ProcessLookupError:
                pass
        path.unlink(missing_ok=True)


def _use_files() -> None:
    """Multiprocess mode in METRICS_DIR, chosen before any metric exists (prometheus-client fixes a
    metric's storage when it is made). A folder that cannot be made costs the metrics of other
    processes, never the process itself."""
    folder = settings.METRICS_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_dead_live_gauges(folder, own_pid_too=True)
    except OSError as error:
        logger.warning("metrics: %s is not usable (%s); /metrics shows this process's samples only", folder, error)
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        values.ValueClass = values.MutexValue
        return
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    values.ValueClass = values.MultiProcessValue(process_identifier)


def _after_fork_in_child() -> None:
    """A forked process (fullstackagent.server.serve's web processes) is a new process with a new pid:
    prometheus-client opens files of its own at its first sample. A live-gauge file a dead process
    left under that pid must go first, as at a start (_use_files)."""
    folder = directory()
    if folder is not None:
        for path in folder.glob(f"gauge_live*_{process_identifier()}.db"):
            path.unlink(missing_ok=True)


_use_files()
os.register_at_fork(after_in_child=_after_fork_in_child)

# A step is a few queries (ms) or up to 13 Kubernetes calls of at most 10 s each.
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

RECONCILE_STEPS = Counter(
    "fullstackagent_reconcile_steps",
    "Reconcile steps taken, by resource (sandbox, database), kind (the status the step acted on) and "
    "result (ok; retry: failed, retried later; error: ended in ERROR; superseded: the row changed meanwhile).",
    ["resource", "kind", "result"],
)
RECONCILE_STEP_SECONDS = Histogram(
    "fullstackagent_reconcile_step_duration_seconds",
    "Time from claiming a row to recording its step, by resource and kind.",
    ["resource", "kind"],
    buckets=STEP_BUCKETS,
)
# livesum: the open relays of the processes alive now (remove_dead_live_gauges drops the others).
TERMINALS_OPEN = Gauge(
    "fullstackagent_terminals_open",
    "Browser terminals relayed to a sandbox now.",
    multiprocess_mode="livesum",
)
TERMINAL_BYTES = Counter(
    "fullstackagent_terminal_relayed_bytes",
    "Bytes the terminal relay passed on, by direction (to_sandbox, to_browser).",
    ["direction"],
)
for _direction in ("to_sandbox", "to_browser"):
    TERMINAL_BYTES.labels(_direction)  # both series exist from the start, at 0, for rate()
HTTP_SECONDS = Histogram(
    "fullstackagent_http_request_duration_seconds",
    "Time Django took to answer, by route (the URL pattern, not the path), method and status class.",
    ["route", "method", "status"],
    buckets=HTTP_BUCKETS,
)


_failure_logged = False


def _recording_failed() -> None:
    """A sample that could not be written (a full disk under METRICS_DIR) is lost, logged once per
    process; the request, step or terminal it describes goes on."""
    global _failure_logged
    if not _failure_logged:
        _failure_logged = True
        logger.warning("metrics: a sample could not be recorded; later failures are not logged", exc_info=True)


def record_reconcile_step(resource: str, kind: str, result: str, seconds: float) -> None:
    try:
        RECONCILE_STEPS.labels(resource, kind, result).inc()
        RECONCILE_STEP_SECONDS.labels(resource, kind).observe(seconds)
    except Exception:  # noqa: BLE001 - see _recording_failed
        _recording_failed()


class TerminalMeter:
    """One relayed terminal: open from its creation until ``close``. Its byte counts are added when
    flushed (the relay flushes with its periodic admission check and at the end) instead of per
    frame, which would take the metrics lock and write a file for every keystroke and output chunk."""

    DIRECTIONS = (("from_browser", "to_sandbox"), ("to_browser", "to_browser"))

    def __init__(self):
        self._flushed = {"from_browser": 0, "to_browser": 0}
        try:
            TERMINALS_OPEN.inc()
        except Exception:  # noqa: BLE001 - see _recording_failed
            _recording_failed()

    def flush(self, counts: dict) -> None:
        try:
            for key, direction in self.DIRECTIONS:
                delta = counts[key] - self._flushed[key]
                if delta:
                    TERMINAL_BYTES.labels(direction).inc(delta)
                    self._flushed[key] = counts[key]
        except Exception:  # noqa: BLE001 - see _recording_failed
            _recording_failed()

    def close(self, counts: dict) -> None:
        self.flush(counts)
        try:
            TERMINALS_OPEN.dec()
        except Exception:  # noqa: BLE001 - see _recording_failed
            _recording_failed()


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The names of fullstackagent.urls's catch-all patterns: the 404s of unknown paths, one series.
API_NOT_FOUND = "api-not-found"
PAGE_NOT_FOUND = "page-not-found"
_CATCH_ALLS = frozenset({API_NOT_FOUND, PAGE_NOT_FOUND})


class RequestLatencyMiddleware:
    """Observes each request's time by route template: a label value per URL pattern, never per
    path (a path per project id would make a series per project). Runs on every request, so it does
    no query and takes no lock but the metrics' own: two clock reads and one histogram update."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.static_prefix = settings.STATIC_URL

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in _METHODS else "other"
        status = f"{response.status_code // 100}xx"
        try:
            HTTP_SECONDS.labels(self.route(request), method, status).observe(time.perf_counter() - started)
        except Exception:  # noqa: BLE001 - see _recording_failed
            _recording_failed()
        return response

    def route(self, request) -> str:
        match = getattr(request, "resolver_match", None)
        if match is not None:
            if match.url_name in _CATCH_ALLS:
                return "(not found)"
            return "/" + match.route
        # Answered before URL resolution: static files (WhiteNoise), or by a middleware (503, 400).
        return "(static)" if request.path.startswith(self.static_prefix) else "(unresolved)"
