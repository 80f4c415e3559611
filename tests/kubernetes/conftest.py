"""A fake Kubernetes API server that keeps state, over real HTTP on 127.0.0.1, for the real
`kubernetes` client.

Why not kmock's KubernetesEmulator: it applies PUT as a merge, keeps no resourceVersion,
generation or observedGeneration, and has no pods/exec; the backend's correctness hinges on
exactly those. This fake implements what the backends use and nothing else:

- GET (object, list), POST (409 when the name exists), PUT (whole replace; 409 on a stale
  resourceVersion), PATCH (merge; strategic merge as merge for built-in kinds and 415 for custom
  resources, like a real server; JSON patch, 422 when a `test` fails), DELETE (404 when gone;
  finalizers keep the object with a deletionTimestamp; a StatefulSet takes its pods along).
- metadata.generation bumps when anything outside metadata/status changes; resourceVersion on
  every write; Bearer-token authentication (401).
- pods/exec over a websocket (v4.channel.k8s.io): the command really runs, in a folder that
  stands for the pod's /home/agent (paths are translated both ways), with a private tmux socket.
- Controllers are the test's job: ``roll_out`` plays the StatefulSet controller and kubelet,
  ``set_cluster_phase`` / ``finish_cluster_deletion`` play KubeBlocks.
- Faults: ``fail(status, times, method, path)`` answers with an error, ``delay(seconds, ...)``
  answers late (after applying the request, as a real server would), both for N requests.
"""

import asyncio
import base64
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import jsonpatch
import pytest
from aiohttp import WSMsgType, web

NAMESPACE = "team-a"
POD_HOME = "/home/agent"
_CORE = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$")
_GROUP = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)
BUILTIN_GROUPS = {"v1", "apps/v1", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1"}
KINDS = {"pods": "Pod", "secrets": "Secret", "statefulsets": "StatefulSet"}

STATEFULSETS = ("apps/v1", "statefulsets")
SECRETS = ("v1", "secrets")
SERVICES = ("v1", "services")
PODS = ("v1", "pods")
CLAIMS = ("v1", "persistentvolumeclaims")
INGRESSES = ("networking.k8s.io/v1", "ingresses")
SERVICE_ACCOUNTS = ("v1", "serviceaccounts")
ROLES = ("rbac.authorization.k8s.io/v1", "roles")
ROLE_BINDINGS = ("rbac.authorization.k8s.io/v1", "rolebindings")
CLUSTERS = ("apps.kubeblocks.io/v1alpha1", "clusters")


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch: null removes a key, objects merge, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _spec_part(item: dict) -> dict:
    return {key: value for key, value in item.items() if key not in ("metadata", "status")}


@dataclass
class Fault:
    status: int | None  # None: no error, only a delay
    remaining: int | None  # None: forever
    method: str | None
    path: str | None  # a substring of the request path
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.remaining is None or self.remaining > 0) and (
            (self.method is None or self.method == method) and (self.path is None or self.path in path)
        )


class FakeKubernetes:
    def __init__(self, root: Path, token: str = "fake-token-alice"):
        self.root = root
        self.token = token
        self.objects: dict[tuple, dict] = {}
        self.requests: list[tuple[str, str, str]] = []  # (method, path, content type)
        self.faults: list[Fault] = []
        self.query_strings: list[str] = []  # parallel to requests
        self.exec_commands: list[list[str]] = []
        self._tmux_dirs: dict[tuple, Path] = {}
        self._lock = threading.Lock()
        self._resource_version = 100
        self._loop = None
        self._runner = None
        self.port = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self):
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-kubernetes", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the fake Kubernetes API server did not start"
        return self

    def stop(self):
        async def shutdown():
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kubeconfig(self, token: str | None = None, namespace: str = NAMESPACE, server: str | None = None) -> str:
        return (
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: fake\n  cluster:\n    server: {server or self.url}\n"
            f"users:\n- name: alice\n  user:\n    token: {token or self.token}\n"
            f"contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: alice\n    namespace: {namespace}\n"
            "current-context: fake\n"
        )

    # --- what the tests read and change ------------------------------------------------------

    def get(self, resource: tuple, name: str, namespace: str = NAMESPACE) -> dict | None:
        with self._lock:
            item = self.objects.get((*resource, namespace, name))
            return copy.deepcopy(item)

    def names(self, resource: tuple, namespace: str = NAMESPACE) -> list[str]:
        with self._lock:
            return sorted(name for (api, plural, ns, name) in self.objects if (api, plural) == resource and ns == namespace)

    def put(self, resource: tuple, item: dict, namespace: str = NAMESPACE) -> None:
        """Stores an object as if someone else had created it."""
        with self._lock:
            self._store_new(resource, namespace, copy.deepcopy(item))

    def writes(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path, _ in self.requests if method in ("POST", "PUT", "PATCH", "DELETE")]

    def fail(self, status: int, times: int | None = 1, method: str | None = None, path: str | None = None):
        self.faults.append(Fault(status, times, method, path))

    def delay(self, seconds: float, times: int | None = 1, method: str | None = None, path: str | None = None):
        self.faults.append(Fault(None, times, method, path, delay=seconds))

    def pod_home(self, name: str, namespace: str = NAMESPACE) -> Path:
        return self.root / "pods" / namespace / name / "home"

    def pod_tmux_dir(self, name: str, namespace: str = NAMESPACE) -> Path:
        """The pod's TMUX_TMPDIR: short, under /tmp, since a unix socket path has at most 107 bytes."""
        key = (namespace, name)
        if key not in self._tmux_dirs:
            self._tmux_dirs[key] = Path(tempfile.mkdtemp(prefix="fk-tmux-"))
        return self._tmux_dirs[key]

    # --- controllers, played by the test -----------------------------------------------------

    def observe_generation(self, name: str, namespace: str = NAMESPACE) -> None:
        """The StatefulSet controller has seen the new spec and started replacing the pod, which
        is not ready yet: observedGeneration is current, the rollout is not done."""
        with self._lock:
            statefulset = self.objects[(*STATEFULSETS, namespace, name)]
            status = statefulset.setdefault("status", {})
            status.update(
                observedGeneration=statefulset["metadata"]["generation"],
                updateRevision=self._revision(statefulset),
                updatedReplicas=0,
                readyReplicas=0,
            )

    def roll_out(self, name: str, namespace: str = NAMESPACE, ready: bool = True) -> None:
        """The controller and kubelet caught up: pods match the spec (and are ready)."""
        with self._lock:
            statefulset = self.objects[(*STATEFULSETS, namespace, name)]
            replicas = statefulset["spec"].get("replicas", 1)
            revision = self._revision(statefulset)
            statefulset["status"] = {
                "observedGeneration": statefulset["metadata"]["generation"],
                "replicas": replicas,
                "readyReplicas": replicas if ready else 0,
                "availableReplicas": replicas if ready else 0,
                "currentReplicas": replicas,
                "updatedReplicas": replicas,
                "currentRevision": revision,
                "updateRevision": revision,
                "collisionCount": 0,
            }
            pod_key = (*PODS, namespace, f"{name}-0")
            if replicas:
                template = statefulset["spec"]["template"]
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {**copy.deepcopy(template["metadata"]), "name": f"{name}-0"},
                    "spec": copy.deepcopy(template["spec"]),
                    "status": {
                        "phase": "Running",
                        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                    },
                }
                self.objects.pop(pod_key, None)
                self._store_new(PODS, namespace, pod)
                self.pod_home(f"{name}-0", namespace).mkdir(parents=True, exist_ok=True)
                claim_key = (*CLAIMS, namespace, f"home-{name}-0")
                if claim_key not in self.objects:
                    self._store_new(CLAIMS, namespace, {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {"name": f"home-{name}-0", "labels": template["metadata"].get("labels", {})},
                        "spec": copy.deepcopy(statefulset["spec"]["volumeClaimTemplates"][0]["spec"]),
                    })
            else:
                self.objects.pop(pod_key, None)

    def set_pod_status(self, name: str, status: dict, namespace: str = NAMESPACE) -> None:
        with self._lock:
            self.objects[(*PODS, namespace, name)]["status"] = status

    def set_cluster_phase(self, name: str, phase: str, namespace: str = NAMESPACE, observed: bool = True,
                          password: str = "s3cret/p@ss") -> None:
        """KubeBlocks reports ``phase``; once Running, the credentials Secret exists."""
        with self._lock:
            cluster = self.objects[(*CLUSTERS, namespace, name)]
            status = {"phase": phase}
            if observed:
                status["observedGeneration"] = cluster["metadata"]["generation"]
            cluster["status"] = status
            secret_key = (*SECRETS, namespace, f"{name}-conn-credential")
            if phase == "Running" and secret_key not in self.objects:
                encode = lambda value: base64.b64encode(value.encode()).decode()  # noqa: E731
                self._store_new(SECRETS, namespace, {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": f"{name}-conn-credential"},
                    "data": {
                        "host": encode(f"{name}-postgresql"),
                        "port": encode("5432"),
                        "username": encode("postgres"),
                        "password": encode(password),
                    },
                })

    def finish_cluster_deletion(self, name: str, namespace: str = NAMESPACE) -> None:
        """KubeBlocks finished: its finalizer goes, and the cluster with its Secret."""
        with self._lock:
            self.objects.pop((*CLUSTERS, namespace, name))
            self.objects.pop((*SECRETS, namespace, f"{name}-conn-credential"), None)

    # --- the HTTP side -----------------------------------------------------------------------

    def _revision(self, statefulset: dict) -> str:
        digest = hashlib.sha256(json.dumps(statefulset["spec"]["template"], sort_keys=True).encode()).hexdigest()
        return f"{statefulset['metadata']['name']}-{digest[:10]}"

    def _next_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _store_new(self, resource: tuple, namespace: str, item: dict) -> dict:
        metadata = item.setdefault("metadata", {})
        metadata.update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            resourceVersion=self._next_version(),
            generation=1,
            creationTimestamp=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        self.objects[(*resource, namespace, metadata["name"])] = item
        return item

    @staticmethod
    def _status(code: int, reason: str, message: str) -> web.Response:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}
        return web.json_response(body, status=code)

    async def _handle(self, request: web.Request):
        path = request.path
        self.requests.append((request.method, path, request.headers.get("Content-Type", "")))
        self.query_strings.append(request.query_string)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._status(401, "Unauthorized", "Unauthorized")
        fault = next((f for f in self.faults if f.matches(request.method, path)), None)
        if fault is not None:
            if fault.remaining is not None:
                fault.remaining -= 1
            if fault.status is not None:
                reasons = {403: "Forbidden", 500: "InternalError", 503: "ServiceUnavailable", 409: "Conflict"}
                return self._status(fault.status, reasons.get(fault.status, "Error"), f"injected {fault.status}")
        response = await self._route(request)
        if fault is not None and fault.delay:
            # Applied, answered late: the client gives up although the change happened.
            await asyncio.sleep(fault.delay)
        return response

    async def _route(self, request: web.Request):
        path = request.path
        if path.rstrip("/") == "/version":
            return web.json_response({
                "major": "1", "minor": "33", "gitVersion": "v1.33.1", "gitCommit": "0" * 40,
                "gitTreeState": "clean", "buildDate": "2025-05-15T00:00:00Z", "goVersion": "go1.24.2",
                "compiler": "gc", "platform": "linux/amd64",
            })
        match = _CORE.match(path) or _GROUP.match(path)
        if not match:
            return self._status(404, "NotFound", f"the server could not find the requested resource ({path})")
        parts = match.groupdict()
        api = f"{parts['group']}/{parts['version']}" if parts.get("group") else "v1"
        resource, namespace, name, sub = (api, parts["plural"]), parts["ns"], parts["name"], parts["sub"]
        if sub == "exec":
            return await self._exec(request, namespace, name)
        body = None
        if request.method in ("POST", "PUT", "PATCH"):
            body = json.loads(await request.text())
        with self._lock:
            return self._apply(request.method, request.headers.get("Content-Type", ""), resource, namespace, name, body)

    def _apply(self, method, content_type, resource, namespace, name, body):
        key = (*resource, namespace, name)
        kind = resource[1]
        if method == "GET" and name is None:
            items = [copy.deepcopy(v) for (a, p, ns, _), v in sorted(self.objects.items()) if (a, p) == resource and ns == namespace]
            list_kind = KINDS.get(kind, kind.capitalize()) + "List"
            return web.json_response({"apiVersion": resource[0], "kind": list_kind, "metadata": {"resourceVersion": str(self._resource_version)}, "items": items})
        if method == "POST":
            name = body["metadata"]["name"]
            key = (*resource, namespace, name)
            if key in self.objects:
                return self._status(409, "AlreadyExists", f'{kind} "{name}" already exists')
            return web.json_response(self._store_new(resource, namespace, body), status=201)
        current = self.objects.get(key)
        if current is None:
            return self._status(404, "NotFound", f'{kind} "{name}" not found')
        if method == "GET":
            return web.json_response(current)
        if method == "DELETE":
            if current["metadata"].get("finalizers"):
                current["metadata"].setdefault("deletionTimestamp", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
                current["metadata"]["resourceVersion"] = self._next_version()
                return web.json_response(current)
            del self.objects[key]
            if resource == STATEFULSETS:
                # The garbage collector: pods owned by the StatefulSet go with it.
                self.objects.pop((*PODS, namespace, f"{name}-0"), None)
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}})
        if method == "PUT":
            sent_version = (body.get("metadata") or {}).get("resourceVersion")
            if sent_version and sent_version != current["metadata"]["resourceVersion"]:
                return self._status(409, "Conflict", "the object has been modified; please apply your changes to the latest version")
            updated = copy.deepcopy(body)
            updated.pop("status", None)
            if "status" in current:
                updated["status"] = current["status"]
        elif method == "PATCH":
            if "json-patch" in content_type:
                try:
                    updated = jsonpatch.apply_patch(current, body)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
                    return self._status(422, "Invalid", str(error))
            elif "strategic-merge-patch" in content_type and resource[0] not in BUILTIN_GROUPS:
                return self._status(415, "UnsupportedMediaType", "the body of the request was in an unknown format")
            else:
                updated = merge_patch(current, body)
        else:
            return self._status(405, "MethodNotAllowed", method)
        metadata = updated.setdefault("metadata", {})
        for field in ("uid", "creationTimestamp", "namespace", "name", "generation", "deletionTimestamp"):
            if field in current["metadata"]:
                metadata[field] = current["metadata"][field]
        if _spec_part(updated) != _spec_part(current):
            metadata["generation"] = current["metadata"]["generation"] + 1
        metadata["resourceVersion"] = self._next_version()
        self.objects[key] = updated
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            del self.objects[key]
        return web.json_response(updated)

    # --- pods/exec ---------------------------------------------------------------------------

    async def _exec(self, request: web.Request, namespace: str, pod: str):
        with self._lock:
            exists = (*PODS, namespace, pod) in self.objects
        if not exists:
            return self._status(404, "NotFound", f'pods "{pod}" not found')
        command = request.query.getall("command")
        self.exec_commands.append(command)
        home = str(self.pod_home(pod, namespace))
        tmux_dir = self.pod_tmux_dir(pod, namespace)
        tmux_dir.mkdir(parents=True, exist_ok=True)
        argv = [argument.replace(POD_HOME, home) for argument in command]
        socket = web.WebSocketResponse(protocols=("v4.channel.k8s.io",))
        await socket.prepare(request)
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if request.query.get("stdin") == "true" else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=home,
            env={"HOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMUX_TMPDIR": str(tmux_dir)},
        )

        async def pump_stdin():
            async for message in socket:
                if message.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                    data = message.data if isinstance(message.data, bytes) else message.data.encode("latin-1")
                    if data[:1] == b"\x00" and process.stdin is not None:
                        process.stdin.write(data[1:])
                        await process.stdin.drain()

        async def pump(stream, channel: int):
            while chunk := await stream.read(65536):
                await socket.send_bytes(bytes([channel]) + chunk.replace(home.encode(), POD_HOME.encode()))

        stdin_task = asyncio.ensure_future(pump_stdin())
        await asyncio.gather(pump(process.stdout, 1), pump(process.stderr, 2))
        code = await process.wait()
        stdin_task.cancel()
        if code == 0:
            status = {"metadata": {}, "status": "Success"}
        else:
            status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                      "message": f"command terminated with non-zero exit code: {code}",
                      "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        await socket.send_bytes(b"\x03" + json.dumps(status).encode())
        await socket.close()
        return socket


@pytest.fixture
def fake_kubernetes(tmp_path):
    fake = FakeKubernetes(tmp_path / "cluster").start()
    yield fake
    fake.stop()
    # tmux servers started in the fake pods (by the tests or by exec'd commands): each is asked
    # to end through its own socket, never by name.
    for socket_dir in fake._tmux_dirs.values():
        for server in socket_dir.glob("tmux-*/*"):
            subprocess.run(["tmux", "-S", str(server), "kill-server"], capture_output=True, check=False)
        shutil.rmtree(socket_dir, ignore_errors=True)
    shutil.rmtree(tmp_path / "cluster", ignore_errors=True)


@pytest.fixture
def kubernetes_settings(settings, fake_kubernetes):
    """The platform configured for the kubernetes backend against the fake."""
    settings.SANDBOX_BACKEND = "kubernetes"
    settings.KUBERNETES_INGRESS_DOMAIN = "apps.example.test"
    settings.KUBERNETES_RUNTIME_IMAGE = "registry.example.test/fullstackagent/runtime:9.9.9"
    settings.KUBERNETES_TERMINAL_UPSTREAM = "ingress"
    settings.KUBERNETES_REQUEST_TIMEOUT_SECONDS = 1.0
    return settings


@pytest.fixture
def kube_user(user, fake_kubernetes):
    """Alice, with a kubeconfig for the fake cluster."""
    from identities.models import ConfigKey
    from identities.services import set_user_config

    set_user_config(user, ConfigKey.KUBECONFIG, fake_kubernetes.kubeconfig())
    return user
