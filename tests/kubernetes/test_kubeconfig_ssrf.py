"""Issue 14, finding 2: a kubeconfig cannot make the platform send requests to addresses only the
platform can reach, and the check never shows what a server answered.

The suite allows 127.0.0.0/8 (KUBERNETES_ALLOWED_NETWORKS, for the fake API servers); the tests of
the refusal take that allowance away, as in a default installation.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fullstackagent.backends import Owner, PermanentError
from fullstackagent.kubernetes import kubeconfig as kubeconfig_module
from fullstackagent.kubernetes.client import ClientCache
from fullstackagent.kubernetes.kubeconfig import parse_kubeconfig, validate_kubeconfig


def kubeconfig_for(server: str) -> str:
    return (
        f"clusters: [{{name: c, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )


def refused(host: str) -> tuple[bool, str]:
    return (
        False,
        f"The kubeconfig's server {host} is an address the platform does not connect to (loopback, "
        "link-local, or the platform's own network); use the address your cluster's API is published on.",
    )


@pytest.fixture
def default_policy(settings):
    settings.KUBERNETES_ALLOWED_NETWORKS = []


def test_a_loopback_cluster_is_refused_before_any_request(fake_kubernetes, default_policy):
    result = validate_kubeconfig(fake_kubernetes.kubeconfig())

    assert result == refused("127.0.0.1")
    assert fake_kubernetes.requests == []


@pytest.mark.parametrize(
    "server, host",
    [
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),  # cloud metadata
        ("https://localhost:6443", "localhost"),
        ("https://[::1]:6443", "::1"),
        ("https://[::ffff:127.0.0.1]:6443", "::ffff:127.0.0.1"),
        ("https://0.0.0.0:6443", "0.0.0.0"),
        ("https://[fe80::1]:6443", "fe80::1"),
        ("https://224.0.0.1", "224.0.0.1"),
    ],
)
def test_loopback_link_local_and_unroutable_servers_are_refused(server, host, default_policy, monkeypatch):
    def no_request(*args, **kwargs):
        raise AssertionError("a request was sent")

    monkeypatch.setattr(kubeconfig_module.k8s.VersionApi, "get_code", no_request)

    assert validate_kubeconfig(kubeconfig_for(server)) == refused(host)


def test_the_platforms_own_network_is_refused(default_policy):
    interfaces = sorted(
        (interface for interface in kubeconfig_module._platform_interfaces()
         if interface.version == 4 and not interface.ip.is_loopback and interface.network.num_addresses > 4),
        key=str,
    )
    if not interfaces:
        pytest.skip("this machine has no IPv4 network besides loopback")
    network = interfaces[0].network
    own = str(interfaces[0].ip)
    # Another host of the same network (in docker compose: the database's container).
    neighbour = str(next(host for host in network.hosts() if host != interfaces[0].ip))

    assert validate_kubeconfig(kubeconfig_for(f"https://{own}:6443")) == refused(own)
    assert validate_kubeconfig(kubeconfig_for(f"https://{neighbour}:6443")) == refused(neighbour)


def test_an_operator_can_allow_a_network(fake_kubernetes, settings):
    settings.KUBERNETES_ALLOWED_NETWORKS = ["127.0.0.0/8"]

    ok, _ = validate_kubeconfig(fake_kubernetes.kubeconfig())

    assert ok is True


def test_the_reconcilers_client_refuses_the_server_too(fake_kubernetes, default_policy):
    with pytest.raises(PermanentError) as raised:
        ClientCache(max_size=2, ttl_seconds=60).get(Owner(1, fake_kubernetes.kubeconfig()))

    assert str(raised.value).startswith("The kubeconfig's server 127.0.0.1 is an address the platform does not connect to")
    assert fake_kubernetes.requests == []


def test_a_server_url_with_a_query_is_refused():
    text = kubeconfig_for("https://k.example.test/api?x=1")

    assert validate_kubeconfig(text) == (
        False, "The kubeconfig's 'server' URL may not have a query, a fragment or a user name.",
    )


class _OddServer(BaseHTTPRequestHandler):
    """Answers /version with whatever the test put in ``answer`` (status, reason, body)."""

    answer = (200, "OK", b"{}")

    def do_GET(self):
        status, reason, body = self.answer
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def odd_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OddServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def not_kubernetes(url: str) -> tuple[bool, str]:
    return (
        False,
        f"The server at {url} did not answer like a Kubernetes API server; check the server URL, or try again later.",
    )


@pytest.mark.parametrize(
    "answer",
    [
        (200, "OK", json.dumps({"major": "1", "gitVersion": "v9.9.9-internal"}).encode()),  # partial: was a 500
        (200, "OK", b"not json at all"),
        (404, "Not Found internal-banner-v2", b'{"gitVersion": "v9.9.9-internal"}'),
        (500, "Internal secret-service", b"stack trace"),
    ],
)
def test_odd_answers_get_one_classified_message_and_nothing_of_the_answer(odd_server, monkeypatch, answer):
    monkeypatch.setattr(_OddServer, "answer", answer)
    url = f"http://127.0.0.1:{odd_server.server_address[1]}"

    ok, message = validate_kubeconfig(kubeconfig_for(url))

    assert (ok, message) == not_kubernetes(url)
    for leaked in ("v9.9.9", "banner", "secret-service", "trace"):
        assert leaked not in message


def test_the_success_message_does_not_show_the_servers_version(fake_kubernetes):
    ok, message = validate_kubeconfig(fake_kubernetes.kubeconfig())

    assert ok is True
    assert "v1.33" not in message
    assert parse_kubeconfig(fake_kubernetes.kubeconfig()).server in message
