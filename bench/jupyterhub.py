"""JupyterHub beside the platform, for bench/api.py's side-by-side comparison (issue 17).

JupyterHub is installed from PyPI into a virtualenv of its own under .state/bench/ (kept between
runs, never a dependency of the platform), with configurable-http-proxy from npm beside it: the hub
does not start without a proxy to talk to (it asks the proxy for its routes before it listens, even
with ``ConfigurableHTTPProxy.should_start = False``). The benchmark never goes through the proxy: it
calls the Hub API on the hub's own port, as the platform's API is called on its web server's.

The hub runs on its defaults (one process, SQLite, its INFO access log) but for what the benchmark
needs: DummyAuthenticator, its files in a temporary folder, its ports on 127.0.0.1, and a service
token (from the configuration) that sets it up: the users, and one token per load client that the
hub generates, as ``POST /hub/api/users/<name>/tokens`` gives them to anyone. The configured token is
not used under load: JupyterHub treats a token given in its configuration as a password (16384
rounds of SHA-512 on every request that shows it, unless ``trust_user_provided_tokens``), a generated
one as a random key (one round); ``token_costs()`` measures both.

    python bench/jupyterhub.py     # installs if needed, starts it, sets it up, prints the token costs
"""

import http.client
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
JUPYTERHUB_VERSION = "6.1.1"  # the newest on PyPI when this was written
PROXY_VERSION = "5.3.0"  # configurable-http-proxy, on npm
ADMIN_USER = "bench-admin"  # the user whose tokens list and create users
# What the list and create calls need (and "tokens", for the set-up to hand out tokens).
ADMIN_SCOPES = ["list:users", "read:users", "admin:users", "tokens"]


class Unavailable(Exception):
    """JupyterHub could not be installed or started; the message says why."""


def install_dir() -> Path:
    state = Path(os.environ.get("STATE_DIR") or PROJECT_ROOT / ".state")
    return state / "bench" / f"jupyterhub-{JUPYTERHUB_VERSION}"


def _run(command: list[str], what: str, **kwargs) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Unavailable(f"{what} failed: {error}") from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise Unavailable(f"{what} failed (exit {result.returncode}): " + " | ".join(tail))


def install() -> Path:
    """JupyterHub and configurable-http-proxy, installed once under .state/bench/; returns the folder."""
    root = install_dir()
    if (root / "installed").exists():
        return root
    print(f"installing JupyterHub {JUPYTERHUB_VERSION} (PyPI) and configurable-http-proxy {PROXY_VERSION} (npm) "
          f"into {root} ...", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    _run([sys.executable, "-m", "venv", str(root / "venv")], "creating JupyterHub's virtualenv")
    _run([str(root / "venv" / "bin" / "pip"), "install", "--quiet", f"jupyterhub=={JUPYTERHUB_VERSION}"],
         f"pip install jupyterhub=={JUPYTERHUB_VERSION}")
    if not shutil.which("npm"):
        raise Unavailable("npm is not installed (configurable-http-proxy, which JupyterHub needs, comes from npm)")
    (root / "proxy").mkdir()
    # A package.json of its own, or npm installs into the nearest project up the tree: the platform's.
    (root / "proxy" / "package.json").write_text('{"private": true}\n')
    _run(["npm", "install", "--prefix", str(root / "proxy"), "--no-save", "--no-package-lock", "--ignore-scripts", "--no-audit", "--no-fund",
          "--loglevel", "error", f"configurable-http-proxy@{PROXY_VERSION}"],
         f"npm install configurable-http-proxy@{PROXY_VERSION}", cwd=root / "proxy")
    (root / "installed").write_text(f"jupyterhub {JUPYTERHUB_VERSION}\nconfigurable-http-proxy {PROXY_VERSION}\n")
    return root


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


CONFIG = """\
# Written by bench/jupyterhub.py: JupyterHub's defaults but for these lines.
c = get_config()  # noqa: F821
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.db_url = {db_url!r}
c.JupyterHub.cookie_secret_file = {cookie_secret_file!r}
c.JupyterHub.pid_file = {pid_file!r}
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.JupyterHub.bind_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{proxy_command!r}]
c.ConfigurableHTTPProxy.pid_file = {proxy_pid_file!r}
c.JupyterHub.services = [{{"name": "bench-setup", "api_token": {setup_token!r}}}]
c.JupyterHub.load_roles = [
    {{"name": "bench", "scopes": {scopes!r}, "services": ["bench-setup"], "users": [{admin_user!r}]}},
]
"""


class JupyterHub:
    """A running hub with ``users`` users in all: ``bench-<i>`` for each client (``client_tokens``: each
    its own, generated), ``bench-admin`` (``admin_tokens``: one generated token per client, with the
    scopes to list and create users) and fillers."""

    def __init__(self, root: Path, scratch: Path, clients: int, users: int = 50):
        self.root, self.scratch, self.clients, self.users = root, scratch, clients, users
        self.process: subprocess.Popen | None = None
        self.version = ""
        self.client_tokens: list[str] = []
        self.admin_tokens: list[str] = []

    def __enter__(self):
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.setup_token = secrets.token_hex(32)
        config = self.scratch / "jupyterhub_config.py"
        config.write_text(CONFIG.format(
            db_url=f"sqlite:///{self.scratch / 'jupyterhub.sqlite'}",
            cookie_secret_file=str(self.scratch / "jupyterhub_cookie_secret"),
            pid_file=str(self.scratch / "jupyterhub.pid"),
            hub_port=self.port, proxy_port=_free_port(), proxy_api_port=_free_port(),
            proxy_command=str(self.root / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy"),
            proxy_pid_file=str(self.scratch / "proxy.pid"),
            setup_token=self.setup_token, scopes=ADMIN_SCOPES, admin_user=ADMIN_USER,
        ))
        self.log_path = self.scratch / "jupyterhub.log"
        # Its own session, so that stopping it stops the proxy it started too.
        self.process = subprocess.Popen(
            [str(self.root / "venv" / "bin" / "jupyterhub"), "-f", str(config)],
            cwd=self.scratch,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.scratch), "LANG": "C.UTF-8"},
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            self._wait_until_up()
            self._set_up()
        except BaseException:
            self.__exit__()
            raise
        return self

    def request(self, method: str, path: str, token: str | None = None, body=None) -> tuple[int, object]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            headers = {"Authorization": f"token {token}"} if token else {}
            payload = json.dumps(body).encode() if body is not None else None
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, data[:200]

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                raise Unavailable(f"JupyterHub exited with {self.process.returncode} at start; see {self.log_path}: "
                                  + " | ".join(self.log_path.read_text().strip().splitlines()[-3:]))
            try:
                status, answer = self.request("GET", "/hub/api/")
                if status == 200:
                    self.version = answer["version"]
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise Unavailable(f"JupyterHub did not answer GET /hub/api/ within 90 s; see {self.log_path}")
            time.sleep(0.2)

    def _expect(self, expected: int, method: str, path: str, body=None) -> object:
        status, answer = self.request(method, path, self.setup_token, body)
        if status != expected:
            raise Unavailable(f"JupyterHub set-up: {method} {path} answered {status} {answer!r}")
        return answer

    def _set_up(self) -> None:
        names = [f"bench-{index}" for index in range(self.clients)]
        names += [f"user-{index}" for index in range(max(0, self.users - 1 - len(names)))]
        self._expect(201, "POST", "/hub/api/users", {"usernames": names})
        for index in range(self.clients):
            self.client_tokens.append(self._expect(201, "POST", f"/hub/api/users/bench-{index}/tokens", {})["token"])
            self.admin_tokens.append(self._expect(201, "POST", f"/hub/api/users/{ADMIN_USER}/tokens", {})["token"])
        listed = self._expect(200, "GET", "/hub/api/users")
        if len(listed) != max(self.users, self.clients + 1):
            raise Unavailable(f"JupyterHub set-up: {len(listed)} users listed, {self.users} expected")

    def token_costs(self, count: int = 20) -> tuple[float, float]:
        """Median ms of one GET /hub/api/user, one client: with the configured token, with a generated one."""
        timings = []
        for token in (self.setup_token, self.client_tokens[0]):
            samples = []
            for _ in range(count):
                started = time.perf_counter()
                status, _answer = self.request("GET", "/hub/api/user", token)
                samples.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise Unavailable(f"JupyterHub: GET /hub/api/user answered {status}")
            timings.append(statistics.median(samples))
        return timings[0], timings[1]

    def __exit__(self, *exc):
        if self.process is None:
            return False
        if self.process.poll() is None:
            self.process.terminate()  # the hub stops the proxy it started
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of its session is left (the proxy)
        except ProcessLookupError:
            pass
        self.process = None
        return False


def main() -> int:
    try:
        root = install()
        with JupyterHub(root, Path(tempfile.mkdtemp(prefix="fsa-jupyterhub-")), clients=4) as hub:
            configured, generated = hub.token_costs()
            print(f"JupyterHub {hub.version} up on port {hub.port} with {hub.users} users; GET /hub/api/user "
                  f"takes {configured:.1f} ms with the configured token, {generated:.1f} ms with a generated one")
    except Unavailable as error:
        print(f"JupyterHub unavailable: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
