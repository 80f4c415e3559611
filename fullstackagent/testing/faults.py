"""Backing services the fault tests stop and start at will: a private Redis on a port of its own
(the run's shared Redis is never stopped: other tests' workers use it)."""

import subprocess
from pathlib import Path

from fullstackagent import embedded


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
