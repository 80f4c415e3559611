"""API latency benchmark: create-project and list-projects with 20 concurrent clients.

Starts the platform's HTTP server (daphne serving fullstackagent.asgi, as `make run` does) on a
throw-away database (bench/_harness.py), gives every client its own user and personal API token,
and has each client send its requests one after the other over one keep-alive connection (a
closed loop: 20 requests in flight at all times). Latency is measured per request, from sending
to the last byte of the answer.

No Celery worker runs: creating a project only records it and queues its reconcile tasks in
Redis (DESIGN.md "API and UI never wait for infrastructure"), so this measures the API alone.

Ends with the lines
    create-project p99: 12.3 ms
    list-projects p99: 8.1 ms
The goal is p99 under 50 ms for both.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

from _harness import PROJECT_ROOT, BenchPlatform


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Client(threading.Thread):
    """One API user: its own connection and token, requests back to back."""

    def __init__(self, port: int, token: str, requests, start_gate, interval=0.0, offset=0.0):
        super().__init__(daemon=True)
        self.port, self.token, self.requests, self.start_gate = port, token, requests, start_gate
        self.interval, self.offset = interval, offset
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
            if response.status >= 300:
                self.failures.append(f"{method} {path} → {response.status} {payload[:200]!r}")
        connection.close()


def run_phase(port: int, tokens: list[str], make_requests, interval=0.0) -> tuple[list[float], list[str], float]:
    gate = threading.Barrier(len(tokens) + 1)
    # Paced clients start spread over one interval, as independent users would, not in lockstep.
    clients = [
        Client(port, token, make_requests(index), gate, interval, offset=interval * index / len(tokens))
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


def start_daphne(port: int, log_path) -> subprocess.Popen:
    from fullstackagent import embedded

    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "fullstackagent.asgi:application"],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not embedded.port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"daphne did not start; see {log_path}")
        time.sleep(0.1)
    return process


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/api.py",
        description="create-project and list-projects latency with concurrent clients against a live daphne.",
    )
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients, each its own user (default 20)")
    parser.add_argument("--creates", type=int, default=20, help="projects each client creates (default 20)")
    parser.add_argument("--lists", type=int, default=50, help="list requests each client sends (default 50)")
    parser.add_argument(
        "--interval",
        type=float,
        default=0.0,
        help="seconds between one client's requests (default 0: back to back, the server's saturation); "
        "e.g. 0.5 is 20 clients x 2 requests/s",
    )
    args = parser.parse_args(argv)

    with BenchPlatform("api") as platform:
        from django.contrib.auth import get_user_model

        from fullstackagent import embedded
        from identities.tokens import do_create_api_token

        tokens = []
        for index in range(args.clients):
            user = get_user_model().objects.create_user(username=f"bench-{index}", password=None)
            tokens.append(do_create_api_token(user, name="bench")[1])
        port = embedded.free_port()
        daphne = start_daphne(port, platform.scratch / "daphne.log")
        platform.processes.append(daphne)

        # Warm-up: imports, connections, template and serializer caches.
        run_phase(port, tokens, lambda index: [("GET", "/api/projects", None)] * 3)

        def creates(index):
            return [
                ("POST", "/api/projects", json.dumps({"name": f"Bench {chr(97 + n % 26)}{chr(97 + index % 26)} app"}).encode())
                for n in range(args.creates)
            ]

        create_latencies, create_failures, create_elapsed = run_phase(port, tokens, creates, args.interval)
        list_latencies, list_failures, list_elapsed = run_phase(
            port, tokens, lambda index: [("GET", "/api/projects", None)] * args.lists, args.interval
        )
        if create_failures or list_failures:
            print("failures:", *(create_failures + list_failures)[:10], sep="\n  ")
            return 1

        pacing = f"one request per {args.interval} s each" if args.interval else "requests back to back"
        load = os.getloadavg()[0]
        print(f"{args.clients} concurrent clients ({pacing}), one daphne process, {os.cpu_count()} CPUs, load {load:.1f}")
        report("create-project", create_latencies, create_elapsed)
        report(f"list-projects ({args.creates} projects per user)", list_latencies, list_elapsed)
        print(f"create-project p99: {percentile(create_latencies, .99):.1f} ms")
        print(f"list-projects p99: {percentile(list_latencies, .99):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
