"""Client for Sealos Aiproxy's key hub: one Anthropic-compatible API key per Sealos user.

``POST {AIPROXY_ENDPOINT}/api/keyhub`` with ``{"name": ..., "kc": <kubeconfig>}`` answers
``{"code": 200, "data": {"key": ..., "name": ..., ...}}``. The kubeconfig in the body is the
credential: Aiproxy looks up the Sealos user it belongs to and creates (or returns) that user's key,
so no Authorization header is sent, as in the original system.

Nothing secret is ever put into an exception message or a log line: not the kubeconfig, not the
reply body (it holds the key).
"""

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings


class AiproxyError(Exception):
    """The key hub could not give a key; the message is safe to log."""


@dataclass(frozen=True)
class AiproxyKey:
    key: str
    name: str

    def __repr__(self):
        # Keeps the key out of tracebacks and debug output.
        return f"AiproxyKey(name={self.name!r}, key=<hidden>)"


def key_name_for(sealos_user_id: str) -> str:
    return f"fullstackagent-{sealos_user_id}"


def request_key(*, name: str, kubeconfig: str, endpoint: str | None = None, timeout: float | None = None) -> AiproxyKey:
    """Asks the key hub for the key called ``name`` of the kubeconfig's user; raises AiproxyError."""
    endpoint = (endpoint if endpoint is not None else settings.AIPROXY_ENDPOINT).rstrip("/")
    timeout = timeout if timeout is not None else settings.AIPROXY_TIMEOUT_SECONDS
    if not endpoint:
        raise AiproxyError("AIPROXY_ENDPOINT is not configured")
    request = urllib.request.Request(
        f"{endpoint}/api/keyhub",
        data=json.dumps({"name": name, "kc": kubeconfig}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        # urllib's timeout bounds the connect and every read; the reply is small, so in practice it
        # bounds the whole call. The 64 KiB cap keeps a misbehaving server from filling memory.
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(64 * 1024)
    except urllib.error.HTTPError as error:
        raise AiproxyError(f"key hub answered HTTP {error.code}") from None
    except (TimeoutError, socket.timeout):
        raise AiproxyError(f"key hub did not answer within {timeout:g}s") from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise AiproxyError(f"key hub did not answer within {timeout:g}s") from None
        raise AiproxyError(f"key hub unreachable ({type(reason).__name__}: {reason})") from None
    except OSError as error:
        raise AiproxyError(f"key hub connection failed ({type(error).__name__})") from None

    try:
        reply = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise AiproxyError("key hub reply is not JSON") from None
    if not isinstance(reply, dict):
        raise AiproxyError("key hub reply is not a JSON object")
    if reply.get("code") != 200:
        # `message`/`error` are Aiproxy's own words about the failure, never the key.
        detail = reply.get("message") or reply.get("error") or ""
        raise AiproxyError(f"key hub refused: code {reply.get('code')!r} {str(detail)[:200]}".rstrip())
    data = reply.get("data")
    key = data.get("key") if isinstance(data, dict) else None
    if not isinstance(key, str) or not key.strip():
        raise AiproxyError("key hub reply has no data.key")
    return AiproxyKey(key=key.strip(), name=str(data.get("name") or name))
