"""fullstackagent.kubernetes.kubeconfig: what the settings page calls when a kubeconfig is saved, and the
per-user client cache built on it."""

import socket

import pytest

from fullstackagent.backends import Owner, PermanentError
from fullstackagent.kubernetes.client import ClientCache
from fullstackagent.kubernetes.kubeconfig import KubeconfigError, parse_kubeconfig, validate_kubeconfig


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_valid_kubeconfig_is_accepted_after_version_and_pod_list(fake_kubernetes):
    ok, message = validate_kubeconfig(fake_kubernetes.kubeconfig())
    assert (ok, message) == (True, f"Connected to the Kubernetes cluster at {fake_kubernetes.url}, namespace 'team-a'.")
    assert [(m, p) for m, p, _ in fake_kubernetes.requests] == [("GET", "/version/"), ("GET", "/api/v1/namespaces/team-a/pods")]
    assert fake_kubernetes.query_strings == ["", "limit=1"]


def test_unreachable_cluster_is_refused():
    server = f"http://127.0.0.1:{closed_port()}"
    text = (
        f"clusters: [{{name: c, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    assert validate_kubeconfig(text) == (
        False,
        f"Cannot reach the cluster at {server}: check the server address, and that the platform's network can reach it.",
    )


def test_wrong_token_is_refused_as_unauthorized(fake_kubernetes):
    ok, message = validate_kubeconfig(fake_kubernetes.kubeconfig(token="not-the-token"))
    assert ok is False
    assert message == (
        f"The cluster at {fake_kubernetes.url} rejected the kubeconfig's credentials (401 Unauthorized): "
        "the token or certificate is wrong or expired; download a fresh kubeconfig."
    )


def test_no_permission_to_list_pods_is_refused_as_forbidden(fake_kubernetes):
    fake_kubernetes.fail(403, times=None, path="/pods")
    ok, message = validate_kubeconfig(fake_kubernetes.kubeconfig(namespace="someone-else"))
    assert ok is False
    assert message == (
        "The kubeconfig has no permission to list pods in namespace 'someone-else' (403 Forbidden); "
        "use a kubeconfig for your own namespace or ask the cluster admin for access."
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "The kubeconfig is empty: paste the whole file."),
        ("clusters: [oops", "The kubeconfig is not valid YAML (line 1)."),
        ("- just a list", "This is not a kubeconfig: it has no 'contexts' list."),
        (
            "contexts: [{name: a, context: {cluster: c, user: u}}, {name: b, context: {cluster: c, user: u}}]",
            "The kubeconfig has no 'current-context': set it to the context to use.",
        ),
        (
            "contexts: [{name: a, context: {cluster: c, user: u}}]\ncurrent-context: a\nusers: []",
            "Your kubeconfig's context refers to a cluster 'c' that it does not define.",
        ),
        (
            "clusters: [{name: c, cluster: {server: 'https://k.example.test', certificate-authority: /etc/ca.crt}}]\n"
            "users: [{name: u, user: {token: t}}]\ncontexts: [{name: a, context: {cluster: c, user: u}}]\ncurrent-context: a",
            "The kubeconfig's cluster uses 'certificate-authority', a path to a file on this machine; "
            "paste the content instead (the '-data' field, or 'token').",
        ),
        (
            "clusters: [{name: c, cluster: {server: 'https://k.example.test'}}]\n"
            "users: [{name: u, user: {tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}}]\n"
            "contexts: [{name: a, context: {cluster: c, user: u}}]\ncurrent-context: a",
            "The kubeconfig's user uses 'tokenFile', a path to a file on this machine; "
            "paste the content instead (the '-data' field, or 'token').",
        ),
        (
            "clusters: [{name: c, cluster: {server: 'https://k.example.test'}}]\n"
            "users: [{name: u, user: {exec: {command: /bin/sh, args: [-c, 'id']}}}]\n"
            "contexts: [{name: a, context: {cluster: c, user: u}}]\ncurrent-context: a",
            "The kubeconfig's user signs in with an 'exec' plugin, which cannot run on the platform; "
            "use a kubeconfig with a token or a client certificate (for example a service account's).",
        ),
        (
            "clusters: [{name: c, cluster: {server: 'https://k.example.test'}}]\n"
            "users: [{name: u, user: {}}]\ncontexts: [{name: a, context: {cluster: c, user: u}}]\ncurrent-context: a",
            "The kubeconfig's user has no credentials: it needs a token or a client certificate.",
        ),
        (
            "clusters: [{name: c, cluster: {server: 'k.example.test'}}]\n"
            "users: [{name: u, user: {token: t}}]\ncontexts: [{name: a, context: {cluster: c, user: u}}]\ncurrent-context: a",
            "The kubeconfig's cluster has no valid 'server' URL (https://host:port).",
        ),
        (
            "clusters: [{name: c, cluster: {server: 'https://k.example.test'}}]\n"
            "users: [{name: u, user: {token: t}}]\n"
            "contexts: [{name: a, context: {cluster: c, user: u, namespace: Not_Valid}}]\ncurrent-context: a",
            "The kubeconfig's namespace 'Not_Valid' is not a valid namespace name.",
        ),
    ],
)
def test_malformed_or_unsafe_kubeconfig_is_refused_before_any_request(text, message):
    assert validate_kubeconfig(text) == (False, message)
    with pytest.raises(KubeconfigError) as raised:
        parse_kubeconfig(text)
    assert str(raised.value) == message


def test_namespace_and_server_host_come_from_the_current_context():
    text = (
        "clusters: [{name: c, cluster: {server: 'https://usw.sealos.io:6443/'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: a, context: {cluster: c, user: u, namespace: ns-abc}}, {name: b, context: {cluster: c, user: u}}]\n"
        "current-context: b\n"
    )
    kubeconfig = parse_kubeconfig(text)
    assert (kubeconfig.context, kubeconfig.namespace, kubeconfig.server, kubeconfig.server_host) == (
        "b", "default", "https://usw.sealos.io:6443", "usw.sealos.io"
    )


def test_client_cache_is_keyed_by_user_and_kubeconfig_bounded_and_expires(fake_kubernetes, monkeypatch):
    cache = ClientCache(max_size=2, ttl_seconds=60)
    first = cache.get(Owner(1, fake_kubernetes.kubeconfig()))
    assert cache.get(Owner(1, fake_kubernetes.kubeconfig())) is first
    # A new kubeconfig for the same user is a new client at once.
    changed = cache.get(Owner(1, fake_kubernetes.kubeconfig(namespace="other")))
    assert changed is not first and changed.namespace == "other"
    cache.get(Owner(2, fake_kubernetes.kubeconfig()))
    assert len(cache) == 2  # the least recently used entry (user 1's first) went
    assert cache.get(Owner(1, fake_kubernetes.kubeconfig())) is not first

    import fullstackagent.kubernetes.client as client_module

    now = client_module.time.monotonic()
    again = cache.get(Owner(2, fake_kubernetes.kubeconfig()))
    monkeypatch.setattr(client_module.time, "monotonic", lambda: now + 61)
    assert cache.get(Owner(2, fake_kubernetes.kubeconfig())) is not again


def test_client_cache_refuses_a_missing_kubeconfig():
    with pytest.raises(PermanentError) as raised:
        ClientCache().get(Owner(1, None))
    assert str(raised.value) == "There is no kubeconfig in your settings: add one in Settings, then start the project."
