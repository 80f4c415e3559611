"""The terminal on the kubernetes backend: the upstream the proxy connects to (with the credential
ttyd checks, proven against a real ttyd started by the runtime entrypoint), the shell's current
directory and file uploads through pods/exec."""

import base64
import io
import subprocess

import pytest

from fullstackagent.backends import PermanentError
from fullstackagent.testing.ttyd import run_command
from projects import services
from sandboxes.backends.base import Owner, SandboxSpec, TerminalUpstream
from sandboxes.backends.kubernetes import KubernetesSandboxBackend
from sandboxes.backends.local import LocalSandboxBackend
from sandboxes.environment import environment_hash
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec
from sandboxes.terminal import do_admit_terminal

TOKEN = "k8s-terminal-token-" + "z" * 30


def make_spec(fake, name="shop-agentruntime-abc123", runtime_state=None, **environment):
    environment = {"TTYD_ACCESS_TOKEN": TOKEN, "PROJECT_NAME": "Shop", "PORT": "3000", **environment}
    return SandboxSpec(
        sandbox_id=1,
        name=name,
        project_id=1,
        project_name="Shop",
        project_k8s_name="shop",
        namespace="",
        owner=Owner(1, fake.kubeconfig()),
        environment=environment,
        environment_hash=environment_hash(environment),
        runtime_state=runtime_state or {},
    )


def running_sandbox(fake):
    backend = KubernetesSandboxBackend()
    spec = make_spec(fake)
    observation = backend.create(spec)
    fake.roll_out(spec.name)
    spec = make_spec(fake, runtime_state=observation.runtime_state)
    return backend, spec


def test_upstream_through_the_ingress_carries_ttyds_credential(kubernetes_settings, fake_kubernetes):
    backend, spec = running_sandbox(fake_kubernetes)
    upstream = backend.terminal_upstream(spec)
    credential = base64.b64encode(f"agent:{TOKEN}".encode()).decode()
    host = f"{spec.runtime_state['terminal_host_label']}.apps.example.test"
    assert upstream == TerminalUpstream(
        url=f"wss://{host}/ws", auth_token=credential, headers={"Authorization": f"Basic {credential}"}
    )
    assert TOKEN not in upstream.url


def test_upstream_through_the_service_from_inside_the_cluster(kubernetes_settings, fake_kubernetes):
    kubernetes_settings.KUBERNETES_TERMINAL_UPSTREAM = "service"
    backend, spec = running_sandbox(fake_kubernetes)
    assert backend.terminal_upstream(spec).url == "ws://shop-agentruntime-abc123-service.team-a.svc:7681/ws"
    assert backend.observe(spec).ttyd_url == "ws://shop-agentruntime-abc123-service.team-a.svc:7681/ws"


def test_upstream_credential_opens_a_real_ttyd_started_by_the_runtime_entrypoint(kubernetes_settings, fake_kubernetes):
    """The same token, run by the runtime's entrypoint (through the local backend), accepts the
    credential the kubernetes backend builds, and refuses another."""
    backend, spec = running_sandbox(fake_kubernetes)
    kubernetes_upstream = backend.terminal_upstream(spec)
    local = LocalSandboxBackend()
    local_spec = make_spec(fake_kubernetes, name="credential-agentruntime-k8s001")
    local.create(local_spec)
    try:
        local_url = local.terminal_upstream(local_spec).url
        upstream = TerminalUpstream(url=local_url, auth_token=kubernetes_upstream.auth_token, headers=kubernetes_upstream.headers)
        assert "ttyd-accepts" in run_command(upstream, "echo ttyd-$((1+0))accepts | tr -d 1", r"ttyd-accepts")
        wrong = base64.b64encode(b"agent:" + b"w" * 48).decode()
        with pytest.raises(Exception):
            run_command(TerminalUpstream(url=local_url, auth_token=wrong, headers={"Authorization": f"Basic {wrong}"}), "echo no", "no", timeout=3)
    finally:
        local.delete(local_spec)


def test_terminal_proxy_admits_a_running_kubernetes_sandbox(
    kubernetes_settings, fake_kubernetes, kube_user, django_assert_num_queries
):
    project = services.do_create_project(kube_user, name="Shop")
    sandbox = Sandbox.objects.get(project=project)
    backend = KubernetesSandboxBackend()
    observation = backend.create(build_spec(sandbox))
    Sandbox.objects.filter(pk=sandbox.pk).update(status="RUNNING", runtime_state=observation.runtime_state, k8s_namespace="team-a")
    # The sandbox with its project and terminal token, the owner's kubeconfig, the audit row, the
    # activity note (the first in its interval).
    with django_assert_num_queries(4):
        admission = do_admit_terminal(kube_user, project.pk, "main")
    assert admission.upstream.url == f"wss://{observation.runtime_state['terminal_host_label']}.apps.example.test/ws"
    token = build_spec(Sandbox.objects.get(pk=sandbox.pk)).environment["TTYD_ACCESS_TOKEN"]
    assert base64.b64decode(admission.upstream.auth_token).decode() == f"agent:{token}"


def test_terminal_cwd_reads_the_tmux_sessions_directory_in_the_pod(kubernetes_settings, fake_kubernetes):
    backend, spec = running_sandbox(fake_kubernetes)
    pod = f"{spec.name}-0"
    home = fake_kubernetes.pod_home(pod)
    (home / "app" / "src").mkdir(parents=True)
    tmux_dir = fake_kubernetes.pod_tmux_dir(pod)
    environment = {"TMUX_TMPDIR": str(tmux_dir), "HOME": str(home), "PATH": "/usr/bin:/bin"}
    subprocess.run(["tmux", "new-session", "-d", "-s", "main", "-c", str(home / "app" / "src")], env=environment, check=True)
    try:
        assert backend.terminal_cwd(spec, "main") == "/home/agent/app/src"
        assert backend.terminal_cwd(spec, "other") == "/home/agent"  # no such session: the home
    finally:
        subprocess.run(["tmux", "kill-server"], env=environment, check=False)
    with pytest.raises(PermanentError):
        backend.terminal_cwd(spec, "main; rm -rf ~")


def test_upload_writes_the_file_into_the_directory_in_the_pod(kubernetes_settings, fake_kubernetes):
    backend, spec = running_sandbox(fake_kubernetes)
    home = fake_kubernetes.pod_home(f"{spec.name}-0")
    content = bytes(range(256)) * 4096 + b"end"  # 1 MiB of every byte value, in many frames
    path = backend.upload_file(spec, "/home/agent/app/../uploads", "data.bin", io.BytesIO(content))
    assert path == "/home/agent/uploads/data.bin"
    assert (home / "uploads" / "data.bin").read_bytes() == content
    assert sorted(p.name for p in (home / "uploads").iterdir()) == ["data.bin"]  # no partial file left
    # An empty file works too (nothing to read from stdin).
    assert backend.upload_file(spec, "/home/agent", "empty.txt", io.BytesIO(b"")) == "/home/agent/empty.txt"
    assert (home / "empty.txt").read_bytes() == b""


@pytest.mark.parametrize(
    "directory, filename, message",
    [
        ("/etc", "passwd", "Uploads go inside the sandbox's home folder only."),
        ("/home/agent/../../etc", "x", "Uploads go inside the sandbox's home folder only."),
        ("/home/agentx", "x", "Uploads go inside the sandbox's home folder only."),
        ("relative/dir", "x", "Uploads go inside the sandbox's home folder only."),
        ("/home/agent", "../x", "That file name is not allowed."),
        ("/home/agent", "..", "That file name is not allowed."),
        ("/home/agent", "", "That file name is not allowed."),
    ],
)
def test_upload_outside_the_home_is_refused_before_exec(kubernetes_settings, fake_kubernetes, directory, filename, message):
    backend, spec = running_sandbox(fake_kubernetes)
    with pytest.raises(PermanentError) as raised:
        backend.upload_file(spec, directory, filename, io.BytesIO(b"x"))
    assert str(raised.value) == message
    assert fake_kubernetes.exec_commands == []


def test_upload_cannot_replace_a_folder(kubernetes_settings, fake_kubernetes):
    backend, spec = running_sandbox(fake_kubernetes)
    home = fake_kubernetes.pod_home(f"{spec.name}-0")
    (home / "taken").mkdir()
    with pytest.raises(PermanentError) as raised:
        backend.upload_file(spec, "/home/agent", "taken", io.BytesIO(b"x"))
    assert str(raised.value) == "A file upload cannot replace a link or a folder."
    assert (home / "taken").is_dir()


def test_ingress_domain_defaults_to_the_clusters_server_host(kubernetes_settings, fake_kubernetes):
    kubernetes_settings.KUBERNETES_INGRESS_DOMAIN = ""
    backend, spec = running_sandbox(fake_kubernetes)
    observation = backend.observe(spec)
    assert observation.public_url == f"https://{spec.runtime_state['app_host_label']}.127.0.0.1"
    assert observation.ttyd_url == f"wss://{spec.runtime_state['terminal_host_label']}.127.0.0.1/ws"


def test_the_preview_reaches_the_app_through_the_ingress_or_from_inside_the_cluster(kubernetes_settings, fake_kubernetes):
    backend, spec = running_sandbox(fake_kubernetes)
    through_ingress = backend.observe(spec)
    kubernetes_settings.KUBERNETES_TERMINAL_UPSTREAM = "service"
    in_cluster = backend.observe(spec)

    assert through_ingress.app_upstream == through_ingress.public_url.rstrip("/")
    assert through_ingress.app_upstream.startswith("https://")
    assert in_cluster.app_upstream == f"http://{spec.name}-service.{in_cluster.namespace}.svc:3000"
