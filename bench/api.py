"""API latency benchmark: create-project and list-projects with 20 concurrent clients.

Starts the platform's web server as production runs it (``python -m fullstackagent.server.serve``: one
web process per CPU, DEBUG off) on a throw-away database (bench/_harness.py), gives every client its
own user and personal API token, and has each client send its requests one after the other over
one keep-alive connection (a closed loop: 20 requests in flight at all times, so latency is set by
how many requests a second the machine serves). Latency is measured per request, from sending to
the last byte of the answer.

The baseline, measured in the same run against the same server: a request that does nothing (an
unknown /api/ path, answered 404 by Django through the same middleware), that is, what the
server, the machine and this client cost before the platform does any work.

No Celery worker runs: creating a project only records it and queues its reconcile tasks in
Redis (README "What it is": a request only records the desired state), so this measures the API alone.

Then the platform's results, ending with the lines
    baseline (no-op request) p99: 30.1 ms
    create-project p99: 61.2 ms (2.0x the baseline)
    list-projects p99: 45.3 ms (1.5x the baseline)
The goal is p99 under 50 ms for create-project and list-projects.

Side by side with JupyterHub (issue 17; bench/jupyterhub.py installs it from PyPI, with npm's
configurable-http-proxy, under .state/bench/ on first use): JupyterHub runs in the same run on the
same machine, and the same clients call both, each call in rounds alternating ours/JupyterHub
(--rounds a side, --lists requests a client in all):
    no credentials        GET /api/no-such-route (404)       GET /hub/api/ (no token either side)
    authenticated no-op   GET /api/user/config               GET /hub/api/user (each client its own user's token)
    create                POST /api/projects                 POST /hub/api/users/<new name>
    list                  GET /api/projects: the user's      GET /hub/api/users: 50 users (the created
                          50 projects (the create rounds     ones deleted first, unmeasured)
                          top them up to --listed)
then the authenticated no-op from one client alone, and paced: every client one request per
--paced-interval (20 clients x 0.1 s: 200 requests/s). CPU is counted per process tree: ours the
web processes, PostgreSQL and Redis; JupyterHub its one process (SQLite runs inside it) and the proxy it
started (idle: the calls go to the hub's own port). Ends with (2 CPUs, a quiet machine; December 2, evening)
    | call                | ours req/s | JupyterHub req/s | ratio |     goal | ours CPU ms/req (server+db) | JupyterHub CPU ms/req |
    |---------------------|------------|------------------|-------|----------|-----------------------------|-----------------------|
    | no credentials      |       3153 |             2874 |  1.10 | >= 1 met |                   0.41+0.00 |                  0.34 |
    | authenticated no-op |       1117 |              884 |  1.26 | >= 1 met |                   1.15+0.37 |                  1.12 |
    | create              |        279 |              123 |  2.27 | >= 2 met |                   3.78+1.74 |                  6.88 |
    | list                |        481 |              117 |  4.11 | >= 3 met |                   2.77+0.84 |                  8.54 |
    server CPU ms per request, ours vs JupyterHub: authenticated no-op 1.15 vs 1.12 (goal ours <= 1.5: met); no credentials 0.41 vs 0.34 (goal ours <= 0.6: met)
    ours authenticated no-op paced (20 clients x 1 per 0.1 s, 200/s): p99 4.2 ms / single-client p50 1.9 ms = 2.2 (goal <= 3: met)
    JupyterHub authenticated no-op paced (20 clients x 1 per 0.1 s, 200/s): p99 3.8 ms / single-client p50 1.2 ms = 3.1
The goals (issue 17): ours / JupyterHub requests/s at least 1 for both no-ops, 2 for create and 3 for
list; ours at most 1.5 server CPU ms per authenticated no-op and 0.6 per 404; the paced no-op's p99 at
most 3 times its single-client p50. --no-jupyterhub skips the comparison; when JupyterHub cannot be
installed (offline) or started, the run says so first and in its last line, and shows ours alone.
"""

import argparse
import contextlib
import gc
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import jupyterhub  # bench/jupyterhub.py
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
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:  # None: a request without credentials
            headers["Authorization"] = f"Bearer {self.token}"
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
        elif part is None and "server" not in roots and ("fullstackagent.server." in command):
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


GOALS = {"no credentials": 1.0, "authenticated no-op": 1.0, "create": 2.0, "list": 3.0}  # ours ÷ JupyterHub, req/s
CPU_GOALS = {"authenticated no-op": 1.5, "no credentials": 0.6}  # ours, server CPU ms per request at most
PACED_GOAL = 3.0  # the paced no-op's p99 ÷ its single-client p50, at most


class Side:
    """What one side's rounds added up to, per call: requests, seconds, latencies, CPU seconds by part."""

    def __init__(self, name: str, port: int, parts: tuple[str, ...]):
        self.name, self.port, self.parts = name, port, parts
        self.count, self.elapsed, self.latencies, self.cpu = {}, {}, {}, {}

    def run(self, call: str, tokens, make_requests, roots, interval=0.0, expect=None) -> list[str]:
        before = cpu_seconds(roots)
        latencies, failures, elapsed = run_phase(self.port, tokens, make_requests, interval, expect)
        after = cpu_seconds(roots)
        self.count[call] = self.count.get(call, 0) + len(latencies)
        self.elapsed[call] = self.elapsed.get(call, 0.0) + elapsed
        self.latencies.setdefault(call, []).extend(latencies)
        spent = self.cpu.setdefault(call, dict.fromkeys(after, 0.0))
        for part in after:
            spent[part] += after[part] - before[part]
        return [f"{self.name} {call}: {failure}" for failure in failures]

    def rate(self, call: str) -> float:
        return self.count[call] / self.elapsed[call]

    def cpu_ms(self, call: str, *parts: str) -> float:
        return sum(self.cpu[call][part] for part in parts or self.parts) * 1000 / self.count[call]


def side_by_side(args, port: int, tokens: list[str], hub, roots: dict[str, int], have: int, project) -> tuple:
    """The four calls on both sides in alternating rounds (ours, JupyterHub, ours, JupyterHub ...), then
    the authenticated no-op alone and paced. Returns both sides, the projects listed, and any failures."""
    clients, rounds = len(tokens), args.rounds
    per_round = max(1, args.lists // rounds)
    ours = Side("ours", port, ("server", "postgres", "redis"))
    theirs = Side("JupyterHub", hub.port, ("jupyterhub",))
    anonymous = [None] * clients
    # The create rounds bring each user to --listed projects, JupyterHub's as many creates.
    creates = max(rounds, args.listed - have)
    bounds = [creates * r // rounds for r in range(rounds + 1)]
    failures: list[str] = []

    def repeat(request, count=per_round):
        return lambda index: [request] * count

    # JupyterHub's warm-up, as the platform's: each client reads, and creates one user (removed below).
    run_phase(hub.port, hub.admin_tokens, lambda index: [("POST", f"/hub/api/users/warm-{index}", None)]
              + [("GET", "/hub/api/users", None), ("GET", "/hub/api/", None)] * 5)
    run_phase(hub.port, hub.client_tokens, repeat(("GET", "/hub/api/user", None), 5))
    for r in range(rounds):
        failures += ours.run("no credentials", anonymous, repeat(("GET", "/api/no-such-route", None)), roots, expect=404)
        failures += theirs.run("no credentials", anonymous, repeat(("GET", "/hub/api/", None)), roots, expect=200)
        failures += ours.run("authenticated no-op", tokens, repeat(("GET", "/api/user/config", None)), roots)
        failures += theirs.run("authenticated no-op", hub.client_tokens, repeat(("GET", "/hub/api/user", None)), roots)
    for r in range(rounds):
        numbers = range(bounds[r], bounds[r + 1])
        failures += ours.run("create", tokens, lambda index: [project(index, have + n, "Side") for n in numbers], roots)
        failures += theirs.run(
            "create", hub.admin_tokens, lambda index: [("POST", f"/hub/api/users/new-{index}-{n}", None) for n in numbers],
            roots, expect=201,
        )
    # Back to the set-up's users before JupyterHub lists them (not measured).
    _, removal_failures, _ = run_phase(
        hub.port, hub.admin_tokens,
        lambda index: [("DELETE", f"/hub/api/users/warm-{index}", None)]
        + [("DELETE", f"/hub/api/users/new-{index}-{n}", None) for n in range(creates)],
        expect=204,
    )
    failures += removal_failures
    for r in range(rounds):
        failures += ours.run("list", tokens, repeat(("GET", "/api/projects", None)), roots)
        failures += theirs.run("list", hub.admin_tokens, repeat(("GET", "/hub/api/users", None)), roots)
    # The no-op alone (one client, back to back), then paced: every client one request per interval.
    for r in range(rounds):
        failures += ours.run("single client", tokens[:1], repeat(("GET", "/api/user/config", None)), roots)
        failures += theirs.run("single client", hub.client_tokens[:1], repeat(("GET", "/hub/api/user", None)), roots)
        failures += ours.run("paced", tokens, repeat(("GET", "/api/user/config", None)), roots, args.paced_interval)
        failures += theirs.run("paced", hub.client_tokens, repeat(("GET", "/hub/api/user", None)), roots, args.paced_interval)
    return ours, theirs, have + creates, failures


def report_side_by_side(args, ours: Side, theirs: Side, hub, listed: int, token_costs: tuple[float, float]) -> None:
    clients = args.clients
    print(
        f"side by side with JupyterHub {hub.version} (PyPI; one hub process, SQLite, DummyAuthenticator, "
        f"otherwise its defaults), same machine, same clients: {clients} back to back, "
        f"{args.rounds} rounds a side alternating ours/JupyterHub"
    )
    print(
        "  calls: no credentials = GET /api/no-such-route (404) | GET /hub/api/; authenticated no-op = "
        "GET /api/user/config | GET /hub/api/user; create = POST /api/projects | POST /hub/api/users/<new>; "
        f"list = GET /api/projects ({listed} projects) | GET /hub/api/users ({hub.users} users)"
    )
    for call in ("no credentials", "authenticated no-op", "create", "list"):
        for side in (ours, theirs):
            latencies = side.latencies[call]
            print(
                f"  {side.name} {call}: {side.count[call]} requests, {side.rate(call):.0f}/s; "
                f"p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, .99):.1f} ms"
            )
    print(
        f"  JupyterHub's token check: GET /hub/api/user {token_costs[0]:.1f} ms with the token of its configuration "
        f"(hashed as a password), {token_costs[1]:.1f} ms with one it generated (used above)"
    )
    rows = [("call", "ours req/s", "JupyterHub req/s", "ratio", "goal", "ours CPU ms/req (server+db)",
             "JupyterHub CPU ms/req")]
    for call, goal in GOALS.items():
        ratio = ours.rate(call) / theirs.rate(call)
        rows.append((
            call, f"{ours.rate(call):.0f}", f"{theirs.rate(call):.0f}", f"{ratio:.2f}",
            f">= {goal:g} {'met' if ratio >= goal else 'MISSED'}",
            f"{ours.cpu_ms(call, 'server'):.2f}+{ours.cpu_ms(call, 'postgres', 'redis'):.2f}",
            f"{theirs.cpu_ms(call):.2f}",
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for number, row in enumerate(rows):
        cells = [cell.ljust(width) if column == 0 else cell.rjust(width) for column, (cell, width) in enumerate(zip(row, widths))]
        print("| " + " | ".join(cells) + " |")
        if number == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    print("server CPU ms per request, ours vs JupyterHub: " + "; ".join(
        f"{call} {ours.cpu_ms(call, 'server'):.2f} vs {theirs.cpu_ms(call):.2f} "
        f"(goal ours <= {goal:g}: {'met' if ours.cpu_ms(call, 'server') <= goal else 'MISSED'})"
        for call, goal in CPU_GOALS.items()
    ))
    for side in (ours, theirs):
        p99, p50 = percentile(side.latencies["paced"], .99), statistics.median(side.latencies["single client"])
        goal = f" (goal <= {PACED_GOAL:g}: {'met' if p99 / p50 <= PACED_GOAL else 'MISSED'})" if side is ours else ""
        print(
            f"{side.name} authenticated no-op paced ({clients} clients x 1 per {args.paced_interval:g} s, "
            f"{side.rate('paced'):.0f}/s): p99 {p99:.1f} ms / single-client p50 {p50:.1f} ms = {p99 / p50:.1f}{goal}"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/api.py",
        description="create-project and list-projects latency with concurrent clients against the live platform, "
        "and the same calls side by side with JupyterHub's.",
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
    parser.add_argument(
        "--no-jupyterhub", action="store_true",
        help="skip the side-by-side with JupyterHub (which is installed from PyPI and npm under .state/bench/)",
    )
    parser.add_argument(
        "--rounds", type=int, default=2,
        help="side by side: rounds a side of each call, alternating (default 2); a side sends --lists requests "
        "a client of each call in all",
    )
    parser.add_argument(
        "--listed", type=int, default=50,
        help="side by side: what a list call returns, each user's projects (the create rounds top them up) and "
        "JupyterHub's users (default 50)",
    )
    parser.add_argument(
        "--paced-interval", type=float, default=0.1,
        help="side by side: seconds between one client's requests in the paced no-op (default 0.1: 20 clients "
        "make 200 requests/s)",
    )
    args = parser.parse_args(argv)
    if not args.debug:
        production_settings()

    hub_root, hub_problem = None, None
    if not args.no_jupyterhub:
        try:
            hub_root = jupyterhub.install()
        except jupyterhub.Unavailable as error:
            hub_problem = f"JupyterHub {jupyterhub.JUPYTERHUB_VERSION} could not be installed: {error}"
            print(hub_problem, flush=True)

    with BenchPlatform("api") as platform, contextlib.ExitStack() as stack:
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
        hub = None
        if hub_root is not None:
            try:
                hub = stack.enter_context(jupyterhub.JupyterHub(hub_root, platform.scratch / "jupyterhub", args.clients, args.listed))
                roots["jupyterhub"] = hub.process.pid
            except jupyterhub.Unavailable as error:
                hub_problem = f"JupyterHub {jupyterhub.JUPYTERHUB_VERSION} did not start: {error}"
                print(hub_problem, flush=True)

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
        if hub is not None:
            token_costs = hub.token_costs()
            ours, theirs, listed, side_failures = side_by_side(
                args, port, tokens, hub, roots, have=1 + args.creates, project=project
            )
            failures += side_failures
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
        if hub is not None:
            report_side_by_side(args, ours, theirs, hub, listed, token_costs)
        elif hub_problem:
            print(f"side by side with JupyterHub: SKIPPED, {hub_problem} (--no-jupyterhub skips it without trying)")
        else:
            print("side by side with JupyterHub: skipped (--no-jupyterhub)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
