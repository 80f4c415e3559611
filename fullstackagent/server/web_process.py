"""One web process: uvicorn serving fullstackagent.asgi (HTTP and the terminal websockets) on a
listening socket inherited from fullstackagent.server.serve.

Why uvicorn and not daphne (README "Web server"): bench/terminal.py and bench/api.py, run against
both on the same machine. Under daphne (Twisted and autobahn) a terminal open cost 5-7 ms of the
web process's CPU, of which about 1.5 ms was the server's own; 400 opens at once took 1.5-1.7 times
as long through the relay as straight to ttyd, and the relay added 0.6 ms to a keystroke's echo
(a trivial echo application under daphne: 0.37 ms per round trip, under uvicorn 0.22). Channels,
the consumers and fullstackagent.threaded_http are unchanged: they are ASGI, whatever serves them.

The options, each for a reason:
- uvloop and httptools, the fast loop and HTTP parser (both wheels, no compiler needed), with a
  limit on a request's URL and headers (fullstackagent.server.http_protocol: 431 past 64 KiB);
- websockets' sans-I/O protocol, uvicorn's default, which applies backpressure: a browser that reads
  terminal output slower than the sandbox writes it slows the relay down instead of growing the
  web process's memory (daphne buffered without bound);
- messages from a browser up to 16 MiB (the preview relays the user's app's websockets too);
- no permessage-deflate: terminal frames are small and frequent; compressing each cost CPU and
  latency on both ends (daphne never offered it either);
- proxy headers off: X-Forwarded-For is trusted only as the settings say (TRUSTED_PROXY_COUNT),
  not by uvicorn's default of trusting 127.0.0.1;
- pings every 20 s (a dead browser connection is noticed within 40 s; proxies that drop silent
  websockets after 60 s see traffic), and no time limit on an open websocket;
- a keep-alive of 75 s, longer than the idle timeout of the usual load balancers, so a balancer
  never reuses a connection the server is closing at that moment (uvicorn's default is 5 s);
- on SIGTERM, open websockets are closed with 1012 ("service restart": the terminal page
  reconnects) and requests in flight get WEB_GRACEFUL_SHUTDOWN_SECONDS to finish.

fullstackagent.server.serve forks its web processes with the platform already loaded (``load``)
and runs ``main`` in each; run as a command, it loads the platform itself:

    python -m fullstackagent.server.web_process --fd 3
"""

import argparse
import importlib
import logging
import signal
import socket
import sys

APPLICATION = "fullstackagent.asgi:application"
PING_SECONDS = 20.0
KEEP_ALIVE_SECONDS = 75
# On SIGTERM, how long requests in flight may take to finish (WEB_GRACEFUL_SHUTDOWN_SECONDS).
GRACEFUL_SHUTDOWN_SECONDS = 5
# The largest websocket message accepted from a browser (uvicorn's default). The terminal's frames
# are keystrokes and pastes (files go through the upload endpoint, in chunks), but the preview
# proxy relays the user's own app's websockets, whose messages are the app's business.
WEBSOCKET_MAX_BYTES = 16 * 1024 * 1024


def uvicorn_config(access_log: bool, graceful_shutdown_seconds: int):
    import uvicorn

    from fullstackagent.server.http_protocol import LimitedHttpToolsProtocol

    return uvicorn.Config(
        APPLICATION,
        loop="uvloop",
        # httptools, with a limit on a request's head (64 KiB) that uvicorn does not have.
        http=LimitedHttpToolsProtocol,
        ws="websockets-sansio",
        ws_max_size=WEBSOCKET_MAX_BYTES,
        ws_ping_interval=PING_SECONDS,
        ws_ping_timeout=PING_SECONDS,
        ws_per_message_deflate=False,
        lifespan="off",
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=graceful_shutdown_seconds,
        # Django's LOGGING (fullstackagent.settings) formats every line, uvicorn's included.
        log_config=None,
        access_log=access_log,
    )


def load() -> None:
    """Imports what a web process runs: the platform (fullstackagent.asgi, with Django set up), uvicorn
    with its protocols and uvloop. Opens no connection and starts no thread, so a process that has
    called it can fork web processes (fullstackagent.server.serve)."""
    # Imported first, by itself: a failure raises its own exception with its traceback, where
    # uvicorn's load() below would log one line and exit.
    importlib.import_module(APPLICATION.partition(":")[0])
    # access_log=True leaves logging as it is: told False, uvicorn turns its access logger off for the
    # process's life, and the web processes forked from this one decide that for themselves.
    config = uvicorn_config(access_log=True, graceful_shutdown_seconds=GRACEFUL_SHUTDOWN_SECONDS)
    config.load()  # the protocol classes and the application, as each web process's start will ask
    config.get_loop_factory()  # imports uvloop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fullstackagent.server.web_process",
        description="One FullstackAgent web process (uvicorn) on an inherited listening socket; "
        "python -m fullstackagent.server.serve starts these.",
    )
    parser.add_argument("--fd", type=int, required=True, help="file descriptor of a bound, listening TCP socket")
    parser.add_argument("--access-log", action="store_true", help="a line per request on stderr")
    parser.add_argument(
        "--graceful-shutdown", type=int, default=GRACEFUL_SHUTDOWN_SECONDS, metavar="SECONDS",
        help=f"on SIGTERM, how long requests in flight may take to finish (default {GRACEFUL_SHUTDOWN_SECONDS})",
    )
    args = parser.parse_args(argv)
    try:
        # socket(fileno=) asks the kernel for the family: a TCP socket gets TCP_NODELAY on its
        # connections (uvicorn's own --fd takes every inherited socket for a UNIX one, and each small
        # answer then waited 40 ms for the client's delayed ACK).
        sock = socket.socket(fileno=args.fd)
    except OSError as error:
        parser.error(f"--fd {args.fd}: {error.strerror}")
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        parser.error(f"--fd {args.fd} is not a TCP socket")

    import uvicorn

    # uvicorn handles SIGTERM and SIGINT (a graceful shutdown), then raises the signal again for the
    # handler it found installed: this one, so a requested stop ends with exit code 0, not by the
    # signal (fullstackagent.server.supervise tells the two apart).
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda signum, frame: None)

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            if self.started:  # uvicorn says nothing when given its sockets
                host, port = sock.getsockname()[:2]
                logging.getLogger("fullstackagent.server").info("web process serving http://%s:%d", host, port)

    server = Server(uvicorn_config(args.access_log, args.graceful_shutdown))
    server.run(sockets=[sock])
    # A failure to load the application exits inside run() (uvicorn: code 1).
    return 0


if __name__ == "__main__":
    sys.exit(main())
