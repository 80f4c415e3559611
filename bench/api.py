"""API latency benchmark: create-project and list-projects with 20 concurrent clients.

Starts the platform's web server as production runs it (``python -m fullstackagent.server.serve``: one
daphne per CPU, DEBUG off) on a throw-away database (bench/_harness.py), gives every client its
own user and personal API token, and has each client send its requests one after the other over
one keep-alive connection (a closed loop: 20 requests in flight at all times, so latency is set by
how many requests a second the machine serves). Latency is measured per request, from sending to
the last byte of the answer.

The baseline, measured in the same run against the same server: a request that does nothing (an
unknown /api/ path, answered 404 by Django through the same middleware), that is, what the
server, the machine and this client cost before the platform does any work.

No Celery worker runs: creating a project only records it and queues its reconcile tasks in
Redis (README "What it is": a request only records the desired state), so this measures the API alone.

Ends with the lines
    baseline (no-op request) p99: 30.1 ms
    create-project p99: 61.2 ms (2.0x the baseline)
    list-projects p99: 45.3 ms (1.5x the baseline)
The goal is p99 under 50 ms for create-project and list-projects.
"""

import argparse
import gc
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

from _harness import PROJECT_ROOT, BenchPlatform, production_settings


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Client(threading.Thread):
    """One API user: its own connection and token, requests back to back."""

    def __init__(self, port: int, token: str, requests, start_gate, interval=0.0, offset=0.0, expect=None):
        super().__init__(daemon=True)
        self.port, self.token, self.requests, self.start_gate = port, token, requests, start_gate
        self.interval, self.offset, self.expect = interval, offset, expect
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def run(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json", "Accept": "application/json"}
        self.start_gate.wait()
        next_send = time.perf_counter() + self.offset
        for method, path, body in self.requests:
            if self.interval:
                # Paced: send on a fixed schedule (a UI polling, a script looping), not back to back.
                time.sleep(max(0.0, next_send - time.perf_counter()))
                next_send += self.interval
            started = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            self.latencies.append((time.perf_counter() - started) * 1000)
            if (response.status != self.expect) if self.expect else response.status >= 300:
                self.failures.append(f"{method} {path} → {response.status} {payload[:200]!r}")
        connection.close()


def run_phase(port: int, tokens: list[str], make_requests, interval=0.0, expect=None) -> tuple[list[float], list[str], float]:
    gate = threading.Barrier(len(tokens) + 1)
    # Paced clients start spread over one interval, as independent users would, not in lockstep.
    clients = [
        Client(port, token, make_requests(index), gate, interval, offset=interval * index / len(tokens), expect=expect)
        for index, token in enumerate(tokens)
    ]
    for client in clients:
        client.start()
    gate.wait()
    started = time.perf_counter()
    for client in clients:
        client.join()
    elapsed = time.perf_counter() - started
    latencies = [value for client in clients for value in client.latencies]
    failures = [failure for client in clients for failure in client.failures]
    return latencies, failures, elapsed


def report(name: str, latencies: list[float], elapsed: float) -> None:
    print(
        f"  {name}: {len(latencies)} requests in {elapsed:.1f} s ({len(latencies) / elapsed:.0f}/s); "
        f"p50 {statistics.median(latencies):.1f} ms, p90 {percentile(latencies, .90):.1f} ms, "
        f"p99 {percentile(latencies, .99):.1f} ms, max {max(latencies):.1f} ms"
    )


def start_server(port: int, processes: int, log_path) -> subprocess.Popen:
    from fullstackagent.devtools import embedded

    process = subprocess.Popen(
        [sys.executable, "-m", "fullstackagent.server.serve", "--host", "127.0.0.1", "--port", str(port),
         "--processes", str(processes)],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not embedded.port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start; see {log_path}")
        time.sleep(0.1)
    return process


PARTS = ("server", "postgres", "redis", "client")  # what the CPU lines of the platform's phases show


def cpu_seconds(roots: dict[str, int] | None = None) -> dict[str, float]:
    """CPU time used so far (Linux) by the server's processes, PostgreSQL, Redis, JupyterHub (with the
    proxy it starts) and this client. A part given a root pid counts that process and all under it, so
    the same programs run by other work on the machine (a test suite) are not counted; a part without
    one counts the processes of its name."""
    tick = os.sysconf("SC_CLK_TCK")
    processes: dict[int, tuple[int, str, str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat_file:
                stat = stat_file.read()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline_file:
                command = cmdline_file.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        processes[int(entry)] = (int(fields[1]), command, name, (int(fields[11]) + int(fields[12])) / tick)
    roots = roots or {}
    part_of_root = {pid: part for part, pid in roots.items()}
    totals = dict.fromkeys((*PARTS, "jupyterhub"), 0.0)
    for pid, (parent, command, name, used) in processes.items():
        part, ancestor = part_of_root.get(pid), parent
        while part is None and ancestor in processes:
            part, ancestor = part_of_root.get(ancestor), processes[ancestor][0]
        if pid == os.getpid():
            part = "client"
        elif part is None and "server" not in roots and ("daphne" in command or "fullstackagent.server.serve" in command):
            part = "server"
        elif part is None and "postgres" not in roots and (name.startswith("postgres") or "postgres" in command.split(" ")[0]):
            part = "postgres"
        elif part is None and "redis" not in roots and "redis-server" in command:
            part = "redis"
        if part is not None:
            totals[part] += used
    return totals


def postmaster_pid(database_url: str) -> int | None:
    """The embedded PostgreSQL's main process, when it is the server of ``database_url``."""
    from urllib.parse import urlsplit

    from fullstackagent.devtools import embedded

    try:
        lines = (embedded.postgres().data_dir / "postmaster.pid").read_text().splitlines()
        return int(lines[0]) if int(lines[3]) == urlsplit(database_url).port else None
    except (OSError, ValueError, IndexError):
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/api.py",
        description="create-project and list-projects latency with concurrent clients against a live daphne.",
    )
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients, each its own user (default 20)")
    parser.add_argument("--creates", type=int, default=20, help="projects each client creates (default 20)")
    parser.add_argument("--lists", type=int, default=100, help="list requests each client sends (default 100)")
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="server processes (default: one per CPU, as fullstackagent.server.serve does)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.0,
        help="seconds between one client's requests (default 0: back to back, the server's saturation); "
        "e.g. 0.5 is 20 clients x 2 requests/s",
    )
    parser.add_argument("--debug", action="store_true", help="run the server with DEBUG on (as `make run` does)")
    args = parser.parse_args(argv)
    if not args.debug:
        production_settings()

    with BenchPlatform("api") as platform:
        from django.contrib.auth import get_user_model

        from fullstackagent.devtools import embedded
        from identities.tokens import do_create_api_token

        tokens = []
        for index in range(args.clients):
            user = get_user_model().objects.create_user(username=f"bench-{index}", password=None)
            tokens.append(do_create_api_token(user, name="bench")[1])
        port = embedded.free_port()
        server = start_server(port, args.processes, platform.scratch / "server.log")
        platform.processes.append(server)
        roots = {"server": server.pid}
        roots.update(redis=next(p.pid for p in platform.processes if "redis-server" in " ".join(map(str, p.args))))
        if (postmaster := postmaster_pid(os.environ["DATABASE_URL"])) is not None:
            roots["postgres"] = postmaster

        def project(index: int, number: int, word: str = "Bench") -> tuple:
            name = f"{word} {chr(97 + number % 26)}{chr(97 + number // 26 % 26)}{chr(97 + index % 26)} app"
            return ("POST", "/api/projects", json.dumps({"name": name}).encode())

        # Warm-up, as a server that has been up a while is: every process has imported its code
        # paths, opened its PostgreSQL connections and its Celery connection to Redis.
        run_phase(
            port, tokens, lambda index: [project(index, 0, "Warm")] + [("GET", "/api/projects", None)] * 5
        )
        # This process is the clients: its garbage collector must not pause them all at once.
        gc.collect()
        gc.freeze()

        cpu_start = cpu_seconds(roots)
        baseline_latencies, baseline_failures, baseline_elapsed = run_phase(
            port, tokens, lambda index: [("GET", "/api/no-such-route", None)] * args.lists, args.interval, expect=404
        )
        cpu_noop = cpu_seconds(roots)
        # The cheapest request that authenticates: the token checked, one small query.
        noop_latencies, noop_failures, noop_elapsed = run_phase(
            port, tokens, lambda index: [("GET", "/api/user/config", None)] * args.lists, args.interval
        )
        cpu_before = cpu_seconds(roots)
        create_latencies, create_failures, create_elapsed = run_phase(
            port, tokens, lambda index: [project(index, n) for n in range(args.creates)], args.interval
        )
        cpu_between = cpu_seconds(roots)
        list_latencies, list_failures, list_elapsed = run_phase(
            port, tokens, lambda index: [("GET", "/api/projects", None)] * args.lists, args.interval
        )
        cpu_after = cpu_seconds(roots)
        failures = baseline_failures + noop_failures + create_failures + list_failures
        if failures:
            print("failures:", *failures[:10], sep="\n  ")
            return 1

        pacing = f"one request per {args.interval} s each" if args.interval else "requests back to back"
        settings = "DEBUG on" if args.debug else "production settings"
        print(
            f"{args.clients} concurrent clients ({pacing}), {args.processes} server processes ({settings}), "
            f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
        )
        report("baseline (no-op request)", baseline_latencies, baseline_elapsed)
        report("authenticated no-op (GET /api/user/config)", noop_latencies, noop_elapsed)
        report("create-project", create_latencies, create_elapsed)
        report(f"list-projects ({args.creates + 1} projects per user)", list_latencies, list_elapsed)
        for name, before, after, count in (
            ("no-op (404)", cpu_start, cpu_noop, len(baseline_latencies)),
            ("authenticated no-op", cpu_noop, cpu_before, len(noop_latencies)),
            ("create-project", cpu_before, cpu_between, len(create_latencies)),
            ("list-projects", cpu_between, cpu_after, len(list_latencies)),
        ):
            shares = ", ".join(f"{part} {(after[part] - before[part]) * 1000 / count:.2f}" for part in PARTS)
            print(f"  CPU ms per {name} request: {shares}")
        baseline_p99 = percentile(baseline_latencies, .99)
        print(f"baseline (no-op request) p99: {baseline_p99:.1f} ms")
        for name, latencies in (
            ("authenticated no-op", noop_latencies), ("create-project", create_latencies), ("list-projects", list_latencies)
        ):
            p99 = percentile(latencies, .99)
            print(f"{name} p99: {p99:.1f} ms ({p99 / baseline_p99:.1f}x the baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
