"""Terminal relay benchmark: output throughput and keystroke echo latency, straight to a sandbox's ttyd
and through the platform (one web process serving fullstackagent.asgi as fullstackagent.server.serve
starts it, signed in with a session cookie), in one run against the same local-backend sandbox.
``--server daphne`` runs daphne instead, the server of earlier versions, for comparison.

Throughput: the shell prints `head -c SIZE /dev/zero | base64` and the client counts the bytes it
receives until an end marker; bytes/s. Echo: one character typed, timed until its echo arrives;
the median of many samples.

By default the sandbox's terminals run without tmux (a project variable TMUX_BIN names no binary,
which runtime/terminal-session.sh answers with a plain shell): tmux redraws the screen instead of
passing every byte on, and sends fewer bytes to a slower reader, so through tmux "bytes received
per second" would not measure the relay. `--with-tmux` measures the chain users get instead, and
compares the time until the whole output has been shown (its inverse is the throughput). With tmux
the storm's terminals are sessions of one tmux server, which refreshes every attached client's
status line when a session is created (about 150 bytes each): N terminals opened in one sandbox
relay N*N/2 status lines, a cost of tmux with that many tabs in one sandbox rather than of the relay.
Then a reconnect storm (``--opens``): that many terminals opened at once on each path, each until
its prompt; the wall time of each storm and the web process's CPU per relayed open (the admission: session,
project, sandbox, audit row, the upstream handshake). While the relay's storm terminals stay open
(idle), echo is measured again on both paths.
Ends with the lines
    throughput ratio (relay/direct): 0.95
    echo p50: direct 0.15 ms, relay 0.40 ms (+0.25 ms)
    400 opens at once: direct 2.30 s, relay 3.10 s (ratio 1.35); web process CPU per relay open 6.0 ms
    echo p50 with 400 relayed terminals open: direct 0.20 ms, relay 0.60 ms (+0.40 ms)
    web process memory: 114 MiB before, 136 MiB with 400 relayed terminals open, 135 MiB after they closed
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

from _harness import PROJECT_ROOT, BenchPlatform, production_settings

END_MARKER = b"BENCH-42-DONE"  # printed as BENCH-$((40+2))-DONE, so the typed command never matches
PROMPT_MARKERS = (b"$ ", b"# ")


class Terminal:
    """A ttyd-protocol client over either path: the same code measures both."""

    def __init__(self, websocket):
        self.websocket = websocket

    @classmethod
    async def open(cls, url, *, headers, subprotocols, init, timeout=20):
        import websockets

        websocket = await websockets.connect(
            url, additional_headers=headers, subprotocols=subprotocols,
            compression=None, max_size=None, open_timeout=timeout,
        )
        await websocket.send(json.dumps(init).encode())
        terminal = cls(websocket)
        await terminal.read_until(lambda tail: any(marker in tail for marker in PROMPT_MARKERS), timeout=timeout)
        return terminal

    async def type(self, text: str) -> None:
        await self.websocket.send(b"0" + text.encode())

    async def read_until(self, done, timeout: float = 120.0) -> int:
        """Reads output frames until done(last bytes) is true; returns the bytes received."""
        received = 0
        self.frames = 0
        tail = b""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.websocket.recv()
                received += len(frame)
                self.frames += 1
                if frame[:1] == b"0":
                    tail = (tail + frame[1:])[-256:]
                    if done(tail):
                        return received

    async def throughput(self, size: str) -> tuple[float, int, float]:
        await self.type("clear\r")
        await asyncio.sleep(0.3)
        await self._drain()
        started = time.perf_counter()
        await self.type(f"head -c {size} /dev/zero | base64; echo BENCH-$((40+2))-DONE\r")
        received = await self.read_until(lambda tail: END_MARKER in tail)
        elapsed = time.perf_counter() - started
        return received / elapsed, received, elapsed

    async def echo(self) -> float:
        """One keystroke: milliseconds until its echo arrives."""
        started = time.perf_counter()
        await self.type("a")
        await self.read_until(lambda tail: b"a" in tail, timeout=10)
        return (time.perf_counter() - started) * 1000

    async def clear_line(self) -> None:
        await self.type("\x15")  # Ctrl-U: keep the line short, no wrapping redraws
        await asyncio.sleep(0.05)
        await self._drain()

    async def _drain(self) -> None:
        while True:
            try:
                async with asyncio.timeout(0.2):
                    await self.websocket.recv()
            except TimeoutError:
                return

    async def close(self) -> None:
        await self.websocket.close()


def start_server(platform, port: int, server: str) -> subprocess.Popen:
    """One web process with the options fullstackagent.server.serve gives each of its own; or one
    daphne as the platform ran it before (``--server daphne``)."""
    from fullstackagent.devtools.embedded import port_open
    from fullstackagent.server.serve import access_log_options, listening_socket

    log = open(platform.scratch / "server.log", "w")
    if server == "daphne":
        command = [
            sys.executable, "-m", "daphne", "--websocket_timeout", "-1", "-v", "0", "-b", "127.0.0.1",
            "-p", str(port), "fullstackagent.asgi:application",
        ]
        sock = None
    else:
        sock = listening_socket("127.0.0.1", port)
        # The web process as a command of its own (serve forks it from itself instead; the same main).
        command = [
            sys.executable, "-m", "fullstackagent.server.web_process", "--fd", str(sock.fileno()), *access_log_options(),
        ]
    try:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
            pass_fds=(sock.fileno(),) if sock else (),
        )
    finally:
        if sock:
            sock.close()
    platform.processes.append(process)
    deadline = time.monotonic() + 30
    while not port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{server} did not start: " + (platform.scratch / "server.log").read_text()[-2000:])
        time.sleep(0.05)
    return process


async def measure(paths: dict, args) -> dict:
    results = {mode: {"throughput": [], "echo": []} for mode in paths}
    terminals = await open_pair(paths)
    try:
        # Alternating rounds: a busy neighbour on the machine slows both paths alike.
        for _ in range(args.rounds):
            for mode in ("direct", "relay"):
                rate, received, elapsed = await terminals[mode].throughput(args.size)
                # Through tmux the bytes received depend on how often tmux redraws, so there the
                # measure is how fast the program's output got through: finishing time.
                results[mode]["throughput"].append(1 / elapsed if args.with_tmux else rate)
                print(
                    f"  {mode:6} {rate / 1e6:7.2f} MB/s received ({received / 1e6:.1f} MB in "
                    f"{terminals[mode].frames} frames), done in {elapsed:.2f} s"
                )
        echoes = await echo_samples(terminals, args.echoes)
        for mode in terminals:
            results[mode]["echo"] = echoes[mode]
    finally:
        for terminal in terminals.values():
            await terminal.close()
    return results


async def open_pair(paths: dict) -> dict:
    terminals = {}
    for mode, (url, headers, subprotocols, init) in paths.items():
        terminals[mode] = await Terminal.open(
            url, headers=headers, subprotocols=subprotocols, init={"columns": 120, "rows": 40, **init}
        )
    return terminals


async def echo_samples(terminals: dict, count: int) -> dict:
    """Keystroke echo times on each path, alternating one by one (a busy neighbour on the machine
    slows both alike)."""
    samples = {mode: [] for mode in terminals}
    for terminal in terminals.values():
        await terminal.clear_line()
    for index in range(count):
        if index and index % 40 == 0:
            for terminal in terminals.values():
                await terminal.clear_line()
        for mode in ("direct", "relay"):
            samples[mode].append(await terminals[mode].echo())
    return samples


def _rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def open_many(paths: dict, count: int, server_pid: int, echoes: int) -> dict:
    """A reconnect storm: ``count`` terminals opened at once on each path (each to its prompt),
    direct first, then through the relay; the wall time of each, the server's CPU per relay open, and
    its resident memory before the relay's storm, with its terminals open, and after they closed.
    While the relay's terminals are open (idle), ``echoes`` echo samples on each path."""
    results = {}
    for mode in ("direct", "relay"):
        if mode == "relay":
            results["rss_before"] = _rss_mib(server_pid)
        url, headers, subprotocols, init = paths[mode]
        cpu_before = _cpu_seconds(server_pid)
        started = time.perf_counter()
        terminals = await asyncio.gather(
            *(
                Terminal.open(
                    url.replace("bench-" + mode, f"bench-{mode}-storm-{index}"),
                    headers=headers, subprotocols=subprotocols, init={"columns": 80, "rows": 24, **init}, timeout=120,
                )
                for index in range(count)
            )
        )
        results[mode] = time.perf_counter() - started
        results[f"{mode}_cpu_ms"] = (_cpu_seconds(server_pid) - cpu_before) * 1000 / count
        if mode == "relay":
            results["rss_open"] = _rss_mib(server_pid)
            pair = await open_pair(paths)
            try:
                results["echo_with_open"] = await echo_samples(pair, echoes)
            finally:
                await asyncio.gather(*(terminal.close() for terminal in pair.values()))
        await asyncio.gather(*(terminal.close() for terminal in terminals))
        await asyncio.sleep(1)  # the shells end before the other path's storm
    await asyncio.sleep(5)  # whatever the process gives back after a burst, it has by now
    results["rss_after"] = _rss_mib(server_pid)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="50M", help="bytes for head -c before base64 (default 50M)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per path (default 3)")
    parser.add_argument("--echoes", type=int, default=600, help="echo samples per path (default 600)")
    parser.add_argument("--with-tmux", action="store_true", help="keep tmux between ttyd and the shell, as users have it")
    parser.add_argument(
        "--opens", type=int, default=400,
        help="terminals opened at once on each path, a reconnect storm (default 400; 0 skips)",
    )
    parser.add_argument("--debug", action="store_true", help="run the server with DEBUG on (as `make run` does)")
    parser.add_argument(
        "--server", choices=("uvicorn", "daphne"), default="uvicorn",
        help="the platform's web process (uvicorn, default) or daphne, which earlier versions ran",
    )
    args = parser.parse_args()
    if not args.debug:
        production_settings()
    # The storm's terminals are processes in one sandbox (with tmux, three each); the sandbox's
    # process limit is not what this measures.
    os.environ.setdefault("LOCAL_SANDBOX_MAX_PROCESSES", str(max(1024, 4 * args.opens + 64)))

    with BenchPlatform("terminal") as platform:
        from django.contrib.auth import get_user_model
        from django.test import Client

        from fullstackagent.devtools.embedded import free_port
        from fullstackagent.status import ResourceStatus
        from projects import services
        from sandboxes.backends import get_sandbox_backend
        from sandboxes.models import Sandbox
        from sandboxes.reconcile import build_spec

        user = get_user_model().objects.create_user("bench", password="bench-password-1")
        project = services.do_create_project(user, name="Bench Terminal")
        if not args.with_tmux:
            services.do_set_variables(project, [{"key": "TMUX_BIN", "value": "/nonexistent/tmux"}])
        sandbox = Sandbox.objects.get(project=project)
        backend = get_sandbox_backend()
        spec = build_spec(sandbox)
        backend.create(spec)
        Sandbox.objects.filter(pk=sandbox.pk).update(status=ResourceStatus.RUNNING)
        upstream = backend.terminal_upstream(spec)
        client = Client()
        client.force_login(user)
        cookie = client.cookies["sessionid"].value

        port = free_port()
        server = start_server(platform, port, args.server)
        # Separate tmux sessions, so each path has its own shell and screen. The direct client does
        # what the proxy does (credential header, AuthToken); the relay client what a browser does.
        paths = {
            "direct": (
                f"{upstream.url}?arg=bench-direct",
                dict(upstream.headers),
                list(upstream.subprotocols),
                {"AuthToken": upstream.auth_token},
            ),
            "relay": (
                f"ws://127.0.0.1:{port}/ws/projects/{project.pk}/terminal/?session=bench-relay",
                {"Origin": f"http://127.0.0.1:{port}", "Cookie": f"sessionid={cookie}"},
                None,
                {},
            ),
        }
        try:
            results = asyncio.run(measure(paths, args))
            storm = asyncio.run(open_many(paths, args.opens, server.pid, args.echoes // 2)) if args.opens else None
        finally:
            backend.delete(spec)

    throughput = {mode: statistics.median(values["throughput"]) for mode, values in results.items()}
    echo = {mode: statistics.median(values["echo"]) for mode, values in results.items()}
    if args.with_tmux:
        print(f"time to print: direct {1 / throughput['direct']:.2f} s, relay {1 / throughput['relay']:.2f} s (medians of {args.rounds})")
    else:
        print(f"throughput: direct {throughput['direct'] / 1e6:.2f} MB/s, relay {throughput['relay'] / 1e6:.2f} MB/s (medians of {args.rounds})")
    print(f"echo samples: {len(results['direct']['echo'])} per path; p90 direct {statistics.quantiles(results['direct']['echo'], n=10)[-1]:.2f} ms, relay {statistics.quantiles(results['relay']['echo'], n=10)[-1]:.2f} ms")
    print(f"throughput ratio (relay/direct): {throughput['relay'] / throughput['direct']:.2f}")
    print(f"echo p50: direct {echo['direct']:.2f} ms, relay {echo['relay']:.2f} ms (+{echo['relay'] - echo['direct']:.2f} ms)")
    if storm:
        print(
            f"{args.opens} opens at once: direct {storm['direct']:.2f} s, relay {storm['relay']:.2f} s "
            f"(ratio {storm['relay'] / storm['direct']:.2f}); {args.server} CPU per relay open {storm['relay_cpu_ms']:.1f} ms"
        )
        with_open = {mode: statistics.median(values) for mode, values in storm["echo_with_open"].items()}
        print(
            f"echo p50 with {args.opens} relayed terminals open: direct {with_open['direct']:.2f} ms, relay "
            f"{with_open['relay']:.2f} ms (+{with_open['relay'] - with_open['direct']:.2f} ms)"
        )
        print(
            f"{args.server} memory: {storm['rss_before']:.0f} MiB before, {storm['rss_open']:.0f} MiB with {args.opens} "
            f"relayed terminals open, {storm['rss_after']:.0f} MiB after they closed"
        )


if __name__ == "__main__":
    main()
