"""End to end: a Sealos user's Aiproxy key reaches the sandbox's shell as ANTHROPIC_AUTH_TOKEN (real
Celery worker, local backend, real ttyd), a changed key reaches the running sandbox through
reconciliation, and the key shows up in no page or API response."""

import asyncio
import json
import re
import time

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from aiproxy.testing import FakeKeyHub
from fullstackagent.status import ProjectStatus, ResourceStatus
from fullstackagent.testing.processes import wait_for
from fullstackagent.testing.ttyd import open_session, run_command
from identities.models import ConfigKey
from identities.services import set_user_config, user_config_map
from projects import services as project_services
from projects.models import Project
from sandboxes.backends import get_sandbox_backend
from sandboxes.models import Sandbox
from sandboxes.reconcile import build_spec

SECRET = "sealos-jwt-secret-for-tests-0123456789"
BASE_URL = "https://aiproxy.example/anthropic"
FIRST_KEY = "sk-aiproxy-e2e-1f2e3d4c5b6a"
SECOND_KEY = "sk-user-own-key-9a8b7c6d5e4f"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: sealos
  cluster: {server: "https://sealos.example:6443"}
contexts:
- name: sealos
  context: {cluster: sealos, user: u-bob, namespace: ns-bob}
current-context: sealos
users:
- name: u-bob
  user: {token: kube-token-of-bob}
"""


def sealos_token():
    now = int(time.time())
    claims = {
        "workspaceUid": "ws-uid", "workspaceId": "ns-bob", "regionUid": "region", "userCrUid": "cr-uid",
        "userCrName": "bob-cr", "userId": "u-bob", "userUid": "uid-bob", "iat": now - 5, "exp": now + 600,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def wait_until_running(project, timeout=30.0):
    def running():
        sandbox = Sandbox.objects.get(project=project)
        assert sandbox.status != ResourceStatus.ERROR, sandbox.last_error
        return Project.objects.get(pk=project.pk).status == ProjectStatus.RUNNING and sandbox.status == ResourceStatus.RUNNING

    wait_for(running, timeout=timeout, message=f"project {project.pk} to run")
    return Sandbox.objects.get(project=project)


def agent_starts_in_the_first_terminal(sandbox) -> None:
    """The first terminal of a sandbox with a key is Claude Code's; opening it leaves the next ones to
    shells."""
    upstream = get_sandbox_backend().terminal_upstream(build_spec(sandbox))

    async def go():
        terminal = await open_session(upstream, session="agent")
        try:
            await terminal.expect(r"Claude\s*Code\s*v\d", timeout=30)
        finally:
            await terminal.websocket.close()

    asyncio.run(go())


def shell_sees(sandbox, session: str) -> str:
    upstream = get_sandbox_backend().terminal_upstream(build_spec(sandbox))
    output = run_command(
        upstream,
        'echo "auth=[$ANTHROPIC_AUTH_TOKEN] base=[$ANTHROPIC_BASE_URL] key=[$ANTHROPIC_API_KEY]"',
        r"auth=\[[^$\]]*\] base=\[[^$\]]*\] key=\[[^$\]]*\]\n",
        session=session,
    )
    return re.findall(r"auth=\[[^$\]]*\] base=\[[^$\]]*\] key=\[[^$\]]*\]", output)[-1]


def get_urls(project):
    """Every GET-able route of the platform without parameters or with ids we can fill in, so a
    page or endpoint added later is searched too. `reveal` endpoints exist to show a secret to
    its owner on an explicit click, so they are the one deliberate exception."""
    ids = {"project_id": project.pk}
    found = []

    def walk(patterns, prefix):
        for entry in patterns:
            route = str(entry.pattern)
            if isinstance(entry, URLResolver):
                if route.startswith("^") or "admin" in route:
                    continue  # regex resolvers: admin and static files
                walk(entry.url_patterns, prefix + route)
            elif isinstance(entry, URLPattern):
                if route.startswith("^") or "reveal" in route or "logout" in route:
                    continue
                names = re.findall(r"<(?:\w+:)?(\w+)>", route)
                if any(name not in ids for name in names):
                    continue
                path = "/" + prefix + re.sub(r"<(?:\w+:)?(\w+)>", lambda match: str(ids[match.group(1)]), route)
                found.append(path)

    walk(get_resolver().url_patterns, "")
    return sorted(set(found))


@pytest.mark.django_db(transaction=True)
def test_an_aiproxy_key_reaches_the_sandbox_shell_and_no_page(celery_worker, settings):
    settings.ENABLE_SEALOS_AUTH = True
    settings.SEALOS_JWT_SECRET = SECRET
    client = Client()
    with FakeKeyHub() as keyhub:
        keyhub.answers_with_key(FIRST_KEY)
        settings.AIPROXY_ENDPOINT = keyhub.url
        settings.ANTHROPIC_BASE_URL = BASE_URL
        signed_in = client.post(
            "/identities/sealos/sign-in/",
            json.dumps({"token": sealos_token(), "kubeconfig": KUBECONFIG}),
            content_type="application/json",
        )
    assert signed_in.status_code == 200
    user = get_user_model().objects.get(username="u-bob")
    assert user_config_map(user.pk)[ConfigKey.ANTHROPIC_API_KEY] == FIRST_KEY

    # A sandbox started after the key was set has it as ANTHROPIC_AUTH_TOKEN (never under the
    # key's own name, which Claude Code would treat as a direct Anthropic key).
    project = project_services.do_create_project(user, name="Agent Env")
    sandbox = wait_until_running(project)
    agent_starts_in_the_first_terminal(sandbox)
    assert shell_sees(sandbox, "first") == f"auth=[{FIRST_KEY}] base=[{BASE_URL}] key=[]"

    # A changed key reaches the running sandbox through reconciliation (UPDATING, then RUNNING).
    set_user_config(user, ConfigKey.ANTHROPIC_API_KEY, SECOND_KEY)
    wait_for(
        lambda: Sandbox.objects.get(pk=sandbox.pk).applied_environment_hash != sandbox.applied_environment_hash,
        timeout=30,
        message="the sandbox to be given the new environment",
    )
    sandbox = wait_until_running(project)
    agent_starts_in_the_first_terminal(sandbox)
    assert shell_sees(sandbox, "second") == f"auth=[{SECOND_KEY}] base=[{BASE_URL}] key=[]"

    # Neither key appears in any page or API response the user can open.
    urls = get_urls(project)
    assert {"/", "/identities/", "/api/projects", f"/api/projects/{project.pk}", "/api/user/config"} <= set(urls)
    client.force_login(user)
    statuses = {}
    for url in urls:
        response = client.get(url)
        statuses[url] = response.status_code
        body = response.content.decode(errors="replace")
        assert FIRST_KEY not in body, url
        assert SECOND_KEY not in body, url
        assert "kube-token-of-bob" not in body, url
    assert statuses["/"] == statuses["/identities/"] == statuses["/api/user/config"] == 200
    assert statuses["/api/projects"] == statuses[f"/api/projects/{project.pk}"] == 200
