"""Where a project's preview lives: ``<label>.<PREVIEW_DOMAIN>``, one origin per project.

The label is ``p<project id>``, so the proxy finds the project from the Host header alone."""

import re

from django.conf import settings

_LABEL = re.compile(r"^p(\d{1,18})$")


def preview_origin(project_id: int) -> str:
    port = f":{settings.PREVIEW_PORT}" if settings.PREVIEW_PORT else ""
    return f"{settings.PREVIEW_SCHEME}://p{project_id}.{settings.PREVIEW_DOMAIN}{port}"


def host_name(host: str) -> str:
    """``Host`` header → lower-case name without port (IPv6 literals never name a preview)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host
    return host.rsplit(":", 1)[0] if ":" in host else host


def is_preview_host(host: str) -> bool:
    return host_name(host).endswith("." + settings.PREVIEW_DOMAIN)


def project_id_for_host(host: str) -> int | None:
    """The project a preview host names, or None when it names none (a deeper subdomain included:
    only ``<label>.<PREVIEW_DOMAIN>`` is a preview)."""
    name = host_name(host)
    suffix = "." + settings.PREVIEW_DOMAIN
    if not name.endswith(suffix):
        return None
    match = _LABEL.match(name[: -len(suffix)])
    return int(match.group(1)) if match else None
