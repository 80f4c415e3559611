"""Backing services the fault tests stop and start at will: a private Redis on a port of its own
(the run's shared Redis is never stopped: other tests' workers use it)."""

import subprocess
from pathlib import Path

from fullstackagent.devtools import embedded


class PrivateRedis:
    """A real redis-server for one test, stopped and started again on the same port."""

    def __init__(self, root: Path):
        self.root = root
        self.port = embedded.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = embedded.start_redis(self.root, self.port, daemonize=False)

    def stop(self) -> None:
        """SIGKILL, as a crashed or partitioned Redis: clients see their connections reset."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


class TcpProxy:
    """A TCP proxy in front of a real server (PostgreSQL), for outages without stopping the server
    other tests use: ``cut()`` resets every open connection and refuses new ones, exactly what
    clients see when the server process dies; ``restore()`` listens again on the same port."""

    def __init__(self, target_host: str, target_port: int):
        import threading

        self.target = (target_host, int(target_port))
        self.port = embedded.free_port()
        self._lock = threading.Lock()
        self._connections: list = []
        # The local ports of every connection this proxy opened to the server: PostgreSQL's
        # pg_stat_activity.client_port of the sessions that came through it.
        self.upstream_ports: set[int] = set()
        self._listener = None
        self.restore()

    def restore(self) -> None:
        import socket
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._accepting.start()

    def cut(self) -> None:
        import socket

        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() stops the listening and wakes the thread blocked in accept(); close()
            # alone would leave the socket listening until that accept() returned.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
            # A connection being accepted right now is registered before the accept loop ends.
            self._accepting.join(timeout=5)
        with self._lock:
            connections, self._connections = self._connections, []
        for sock in connections:
            try:
                # RST rather than FIN: like a server that is gone, not one closing politely.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                # shutdown() wakes the pump thread blocked in recv(); close() alone would not.
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            finally:
                sock.close()

    def _accept(self, listener) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
                self.upstream_ports.add(upstream.getsockname()[1])
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink) -> None:
        import socket

        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # One side ended (a client killed, a server gone): end the other too, as the kernel
            # would for a direct connection. shutdown() first: the opposite pump thread is blocked
            # in recv() on the socket, and close() alone would neither wake it nor send the FIN,
            # leaving the PostgreSQL backend of a SIGKILLed worker idle in its transaction, with
            # its row locks held, forever.
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    sock.close()
                except OSError:
                    pass
