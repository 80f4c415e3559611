"""aiproxy.client.request_key against a local key hub (a real HTTP server on 127.0.0.1)."""

import json
import socket
import time

import pytest

from aiproxy.client import AiproxyError, AiproxyKey, key_name_for, request_key
from aiproxy.testing import FakeKeyHub

KUBECONFIG = "apiVersion: v1\nkind: Config\n# the user's credential travels only in the body\n"


@pytest.fixture
def keyhub():
    with FakeKeyHub() as fake:
        yield fake


def test_a_key_comes_back_from_a_post_carrying_the_name_and_kubeconfig(keyhub):
    keyhub.answers_with_key("sk-aiproxy-0123456789")

    key = request_key(name="fullstackagent-u123", kubeconfig=KUBECONFIG, endpoint=keyhub.url, timeout=2)

    assert key == AiproxyKey(key="sk-aiproxy-0123456789", name="fullstackagent-u123")
    [request] = keyhub.requests
    assert request.path == "/api/keyhub"
    assert request.json() == {"name": "fullstackagent-u123", "kc": KUBECONFIG}
    assert request.headers["Content-Type"] == "application/json"
    # As in the original: the kubeconfig is the credential, no Authorization header is sent.
    assert "Authorization" not in request.headers


def test_a_trailing_slash_on_the_endpoint_is_tolerated(keyhub):
    keyhub.answers_with_key("sk-1")

    request_key(name="n", kubeconfig=KUBECONFIG, endpoint=keyhub.url + "/", timeout=2)

    assert [request.path for request in keyhub.requests] == ["/api/keyhub"]


def test_the_key_is_hidden_from_repr():
    assert repr(AiproxyKey(key="sk-secret-value", name="n")) == "AiproxyKey(name='n', key=<hidden>)"


def test_the_key_name_follows_the_original_system():
    assert key_name_for("abc123") == "fullstackagent-abc123"


def test_an_error_code_in_the_reply_is_an_error(keyhub):
    keyhub.answers_code(500, "token quota exceeded")

    with pytest.raises(AiproxyError) as error:
        request_key(name="n", kubeconfig=KUBECONFIG, endpoint=keyhub.url, timeout=2)

    assert str(error.value) == "key hub refused: code 500 token quota exceeded"


def test_an_http_error_status_is_an_error(keyhub):
    keyhub.answers_http_status(502)

    with pytest.raises(AiproxyError) as error:
        request_key(name="n", kubeconfig=KUBECONFIG, endpoint=keyhub.url, timeout=2)

    assert str(error.value) == "key hub answered HTTP 502"


def test_a_hub_that_does_not_answer_times_out(keyhub):
    keyhub.hangs(5.0)
    started = time.monotonic()

    with pytest.raises(AiproxyError) as error:
        request_key(name="n", kubeconfig=KUBECONFIG, endpoint=keyhub.url, timeout=0.4)

    assert str(error.value) == "key hub did not answer within 0.4s"
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>502 Bad Gateway</html>", "key hub reply is not JSON"),
        (b"[1, 2]", "key hub reply is not a JSON object"),
        (json.dumps({"code": 200}).encode(), "key hub reply has no data.key"),
        (json.dumps({"code": 200, "data": {"name": "n"}}).encode(), "key hub reply has no data.key"),
        (json.dumps({"code": 200, "data": {"key": ""}}).encode(), "key hub reply has no data.key"),
        (json.dumps({"code": 200, "data": "sk-in-the-wrong-place"}).encode(), "key hub reply has no data.key"),
    ],
)
def test_a_malformed_reply_is_an_error(keyhub, body, message):
    keyhub.answers_raw(body)

    with pytest.raises(AiproxyError) as error:
        request_key(name="n", kubeconfig=KUBECONFIG, endpoint=keyhub.url, timeout=2)

    assert str(error.value) == message


def test_a_refused_connection_is_an_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.

    with pytest.raises(AiproxyError) as error:
        request_key(name="n", kubeconfig=KUBECONFIG, endpoint=f"http://127.0.0.1:{port}", timeout=2)

    assert str(error.value).startswith("key hub unreachable (ConnectionRefusedError")


def test_no_endpoint_is_an_error(settings):
    settings.AIPROXY_ENDPOINT = ""

    with pytest.raises(AiproxyError) as error:
        request_key(name="n", kubeconfig=KUBECONFIG)

    assert str(error.value) == "AIPROXY_ENDPOINT is not configured"


def test_no_error_message_carries_the_kubeconfig(keyhub):
    secret_kubeconfig = "users:\n- name: u\n  user:\n    token: kube-token-must-not-leak\n"
    messages = []
    for configure in (lambda: keyhub.answers_code(403, "forbidden"), lambda: keyhub.answers_raw(b"nonsense")):
        configure()
        with pytest.raises(AiproxyError) as error:
            request_key(name="n", kubeconfig=secret_kubeconfig, endpoint=keyhub.url, timeout=2)
        messages.append(str(error.value))

    assert all("kube-token-must-not-leak" not in message for message in messages)
