"""Contract of /api/user/config and its sections: kubeconfig (validated), Anthropic, system prompt, reveal."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from identities.models import ConfigKey, UserConfig
from identities.services import set_user_config

CLUSTER_TOKEN = "cluster-token-123"


def _configs(user):
    return {row.key: (row.value, row.is_secret) for row in UserConfig.objects.filter(user=user)}


class _FakeCluster(BaseHTTPRequestHandler):
    """Just what validate_kubeconfig asks a cluster: its version and one pod of the namespace."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.headers.get("Authorization") != f"Bearer {CLUSTER_TOKEN}":
            return self._answer(401, {"kind": "Status", "code": 401, "message": "Unauthorized"})
        if self.path == "/version" or self.path == "/version/":
            return self._answer(
                200,
                {
                    "major": "1", "minor": "31", "gitVersion": "v1.31.2", "gitCommit": "abc", "gitTreeState": "clean",
                    "buildDate": "2024-10-22T00:00:00Z", "goVersion": "go1.22", "compiler": "gc", "platform": "linux/amd64",
                },
            )
        if self.path.startswith("/api/v1/namespaces/team-a/pods"):
            return self._answer(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []})
        return self._answer(403, {"kind": "Status", "code": 403, "message": "forbidden"})

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def cluster_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeCluster)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _kubeconfig(server, token=CLUSTER_TOKEN, namespace="team-a"):
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "main",
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u", "namespace": namespace}}],
        }
    )


def test_config_list_masks_secrets(api, user):
    set_user_config(user, ConfigKey.ANTHROPIC_API_KEY, "sk-ant-secret")
    set_user_config(user, ConfigKey.ANTHROPIC_MODEL, "claude-sonnet-4")

    response = api.get("/api/user/config")

    assert response.status_code == 200
    configs = {item["key"]: (item["value"], item["isSecret"], item["category"]) for item in response.json()["configs"]}
    assert configs == {
        "ANTHROPIC_API_KEY": ("••••••••", True, "anthropic"),
        "ANTHROPIC_MODEL": ("claude-sonnet-4", False, "anthropic"),
    }
    assert "sk-ant-secret" not in response.content.decode()


def test_config_list_is_the_users_own_settings_in_key_order_in_one_query(
    api, user, other_user, django_assert_num_queries
):
    set_user_config(user, ConfigKey.ANTHROPIC_MODEL, "claude-sonnet-4")
    set_user_config(user, ConfigKey.ANTHROPIC_BASE_URL, "https://models.example")
    set_user_config(other_user, ConfigKey.ANTHROPIC_API_KEY, "sk-ant-mallorys")
    set_user_config(other_user, "AAA_FIRST", "mallory's")

    from identities.api import user_configs

    with django_assert_num_queries(1):
        mine = user_configs(user)
    assert [(config.key, config.value) for config in mine] == [
        ("ANTHROPIC_BASE_URL", "https://models.example"), ("ANTHROPIC_MODEL", "claude-sonnet-4"),
    ]
    # Decrypted as the ORM gives it (the stored column is ciphertext).
    assert user_configs(other_user)[1].value == "sk-ant-mallorys"
    assert [item["key"] for item in api.get("/api/user/config").json()["configs"]] == ["ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL"]


def test_config_save_and_remove_one_setting(api, user):
    saved = api.post("/api/user/config", {"key": "EDITOR_THEME", "value": "dark"}, format="json")
    removed = api.post("/api/user/config", {"key": "EDITOR_THEME", "value": ""}, format="json")

    assert saved.status_code == 200
    assert saved.json()["message"] == "Saved EDITOR_THEME."
    assert saved.json()["config"]["value"] == "dark"
    assert removed.json() == {"message": "Removed EDITOR_THEME.", "config": None}
    assert _configs(user) == {}


def test_config_known_secrets_are_always_secret(api, user):
    response = api.post("/api/user/config", {"key": "ANTHROPIC_API_KEY", "value": "sk-1", "isSecret": False}, format="json")

    assert response.json()["config"] == {**response.json()["config"], "value": "••••••••", "isSecret": True}
    assert _configs(user) == {"ANTHROPIC_API_KEY": ("sk-1", True)}


def test_config_refuses_a_bad_key_naming_the_field(api, user):
    response = api.post("/api/user/config", {"key": "bad key", "value": "x"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_KEY"
    assert list(response.json()["fields"]) == ["key"]
    assert _configs(user) == {}


def test_config_refuses_an_unusable_kubeconfig(api, user):
    response = api.post("/api/user/config", {"key": "KUBECONFIG", "value": "not: a kubeconfig"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "KUBECONFIG_INVALID"
    assert list(response.json()["fields"]) == ["kubeconfig"]
    assert _configs(user) == {}


def test_reveal_gives_the_owner_a_secret_setting(api, user, other_user):
    set_user_config(user, ConfigKey.ANTHROPIC_API_KEY, "sk-mine")
    set_user_config(other_user, "THEIR_KEY", "theirs", is_secret=True)

    mine = api.post("/api/user/config/reveal", {"key": "ANTHROPIC_API_KEY"}, format="json")
    theirs = api.post("/api/user/config/reveal", {"key": "THEIR_KEY"}, format="json")

    assert mine.status_code == 200
    assert (mine.json()["key"], mine.json()["value"]) == ("ANTHROPIC_API_KEY", "sk-mine")
    assert theirs.status_code == 404
    assert "theirs" not in theirs.content.decode()


def test_anthropic_settings_read_masked(api, user):
    set_user_config(user, ConfigKey.ANTHROPIC_API_KEY, "sk-ant-1")
    set_user_config(user, ConfigKey.ANTHROPIC_BASE_URL, "https://aiproxy.example/v1")

    response = api.get("/api/user/config/anthropic")

    assert response.status_code == 200
    assert response.json() == {
        "baseUrl": "https://aiproxy.example/v1",
        "apiKey": "••••••••",
        "apiKeySet": True,
        "model": "",
        "smallFastModel": "",
    }


def test_anthropic_save_changes_only_the_fields_sent(api, user):
    set_user_config(user, ConfigKey.ANTHROPIC_API_KEY, "sk-ant-1")

    response = api.post(
        "/api/user/config/anthropic",
        {"baseUrl": "https://api.anthropic.com/", "model": "claude-sonnet-4", "smallFastModel": "claude-haiku"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["anthropic"]["baseUrl"] == "https://api.anthropic.com"
    assert _configs(user) == {
        "ANTHROPIC_API_KEY": ("sk-ant-1", True),
        "ANTHROPIC_BASE_URL": ("https://api.anthropic.com", False),
        "ANTHROPIC_MODEL": ("claude-sonnet-4", False),
        "ANTHROPIC_SMALL_FAST_MODEL": ("claude-haiku", False),
    }


def test_anthropic_refuses_a_base_url_that_is_not_http(api, user):
    response = api.post("/api/user/config/anthropic", {"baseUrl": "ftp://x", "model": "m"}, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == {"baseUrl": ["Enter an http:// or https:// URL."]}
    assert _configs(user) == {}


def test_kubeconfig_read_says_whether_one_is_saved(api, user, cluster_url):
    empty = api.get("/api/user/config/kc").json()
    set_user_config(user, ConfigKey.KUBECONFIG, _kubeconfig(cluster_url))
    saved = api.get("/api/user/config/kc").json()

    assert empty == {"configured": False, "kubeconfig": "", "server": "", "namespace": ""}
    assert saved == {"configured": True, "kubeconfig": "••••••••", "server": cluster_url, "namespace": "team-a"}


def test_kubeconfig_validate_only_does_not_save(api, user, cluster_url):
    response = api.post(
        "/api/user/config/kc", {"kubeconfig": _kubeconfig(cluster_url), "validateOnly": True}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {
        "message": f"Connected to the Kubernetes cluster at {cluster_url}, namespace 'team-a'.",
        "valid": True,
        "saved": False,
    }
    assert _configs(user) == {}


def test_kubeconfig_that_works_is_saved_encrypted_and_secret(api, user, cluster_url):
    text = _kubeconfig(cluster_url)

    response = api.post("/api/user/config/kc", {"kubeconfig": text}, format="json")

    assert response.status_code == 200
    assert response.json()["saved"] is True
    assert _configs(user) == {"KUBECONFIG": (text, True)}
    assert CLUSTER_TOKEN not in response.content.decode()


def test_kubeconfig_the_cluster_rejects_is_400_naming_the_field(api, user, cluster_url):
    response = api.post("/api/user/config/kc", {"kubeconfig": _kubeconfig(cluster_url, token="wrong")}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "KUBECONFIG_INVALID"
    assert "rejected the kubeconfig's credentials (401 Unauthorized)" in body["message"]
    assert body["fields"] == {"kubeconfig": [body["message"]]}
    assert _configs(user) == {}


def test_kubeconfig_delete_removes_it(api, user, cluster_url):
    set_user_config(user, ConfigKey.KUBECONFIG, _kubeconfig(cluster_url))

    response = api.delete("/api/user/config/kc")

    assert response.json() == {"message": "Kubeconfig removed."}
    assert _configs(user) == {}


def test_system_prompt_starts_from_the_default_template(api):
    response = api.get("/api/user/config/system-prompt")

    assert response.status_code == 200
    assert response.json()["isDefault"] is True
    assert "DATABASE_URL" in response.json()["systemPrompt"]


def test_system_prompt_save_and_reset(api, user):
    saved = api.post("/api/user/config/system-prompt", {"systemPrompt": "Build it in Go."}, format="json")
    read = api.get("/api/user/config/system-prompt").json()
    reset = api.post("/api/user/config/system-prompt", {"systemPrompt": ""}, format="json")

    assert saved.json()["message"] == "System prompt saved; the agent gets it the next time it starts."
    assert read == {"systemPrompt": "Build it in Go.", "isDefault": False}
    assert reset.json()["systemPrompt"]["isDefault"] is True
    assert _configs(user) == {}


def test_system_prompt_has_a_size_limit(api, user):
    response = api.post("/api/user/config/system-prompt", {"systemPrompt": "x" * (32 * 1024 + 1)}, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == {"systemPrompt": ["A system prompt has at most 32 KiB."]}
    assert _configs(user) == {}


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/user/config"),
        ("post", "/api/user/config"),
        ("post", "/api/user/config/reveal"),
        ("get", "/api/user/config/anthropic"),
        ("post", "/api/user/config/anthropic"),
        ("get", "/api/user/config/kc"),
        ("post", "/api/user/config/kc"),
        ("delete", "/api/user/config/kc"),
        ("get", "/api/user/config/system-prompt"),
        ("post", "/api/user/config/system-prompt"),
    ],
)
def test_settings_routes_need_authentication(anonymous_api, user, method, path):
    set_user_config(user, ConfigKey.SYSTEM_PROMPT, "kept")

    response = getattr(anonymous_api, method)(path, {"key": "SYSTEM_PROMPT", "value": ""}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "NOT_AUTHENTICATED"
    assert _configs(user) == {"SYSTEM_PROMPT": ("kept", False)}


def test_the_settings_list_is_what_the_declared_fields_give(api, user):
    """ConfigListSerializer builds its output directly; ConfigSerializer's fields give each setting."""
    from identities.api import ConfigSerializer, user_configs

    set_user_config(user, ConfigKey.ANTHROPIC_API_KEY, "sk-ant-0123456789abcdef", is_secret=True)
    set_user_config(user, "EDITOR_THEME", "dark")

    configs = user_configs(user)
    answer = api.get("/api/user/config").json()

    assert answer == {"configs": [dict(ConfigSerializer(config).data) for config in configs]}
    assert [(item["key"], item["isSecret"]) for item in answer["configs"]] == [("ANTHROPIC_API_KEY", True), ("EDITOR_THEME", False)]
    assert "0123456789" not in answer["configs"][0]["value"] and answer["configs"][0]["updatedAt"].endswith("Z")
