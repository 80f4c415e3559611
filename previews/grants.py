"""Who may see a preview, decided without the platform's session (its cookie never reaches a
preview origin): the owner's one-time hand-off, a share link, and the preview's own signed cookie
that either of them sets. Synchronous; the proxy calls these on a thread."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from previews.hosts import preview_origin
from previews.models import PreviewHandoff, PreviewShare
from projects import services
from projects.models import Project
from sandboxes.models import Sandbox

HANDOFF_SECONDS = 60
COOKIE_NAME = "fsa_preview"
_COOKIE_SALT = "previews.cookie"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Grant:
    """What the preview cookie says: the owner (user_id) or a share link's visitor (share_id)."""

    project_id: int
    user_id: int | None = None
    share_id: int | None = None

    def cookie_value(self) -> str:
        payload = {"p": self.project_id, "u": self.user_id} if self.user_id else {"p": self.project_id, "s": self.share_id}
        return signing.dumps(payload, salt=_COOKIE_SALT, compress=False)

    @classmethod
    def from_cookie(cls, value: str, project_id: int) -> "Grant | None":
        """None for a missing, forged, expired cookie or one made for another project's preview."""
        if not value:
            return None
        try:
            payload = signing.loads(value, salt=_COOKIE_SALT, max_age=settings.PREVIEW_COOKIE_MAX_AGE_SECONDS)
        except signing.BadSignature:
            return None
        if not isinstance(payload, dict) or payload.get("p") != project_id:
            return None
        user_id, share_id = payload.get("u"), payload.get("s")
        if isinstance(user_id, int):
            return cls(project_id, user_id=user_id)
        if isinstance(share_id, int):
            return cls(project_id, share_id=share_id)
        return None


@dataclass(frozen=True)
class Access:
    """A grant checked against the database, with what the proxy needs to serve the request."""

    project_id: int
    owner: bool  # the project's owner (may start it), not a share link's visitor
    sandbox_id: int | None
    sandbox_status: str
    upstream: str  # http://host:port of the app; "" when not known yet
    app_port: str  # what $PORT is in the sandbox, for the "start your app" page


def create_handoff(user, project) -> str:
    """A single-use ticket for ``user``'s browser to take to the project's preview origin."""
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    PreviewHandoff.objects.filter(expires_at__lt=now).delete()
    PreviewHandoff.objects.create(
        token_hash=_hash(token), user=user, project=project, expires_at=now + timedelta(seconds=HANDOFF_SECONDS)
    )
    return token


def consume_handoff(token: str, project_id: int) -> Grant | None:
    """The owner's grant, once: a second use, an expired ticket or one for another project is None."""
    if not token or len(token) > 100:
        return None
    with transaction.atomic():
        handoff = (
            PreviewHandoff.objects.select_for_update()
            .filter(token_hash=_hash(token), project_id=project_id, expires_at__gt=timezone.now())
            .first()
        )
        if handoff is None:
            return None
        handoff.delete()
    return Grant(project_id, user_id=handoff.user_id)


def create_share(project) -> tuple[PreviewShare, str]:
    token = secrets.token_urlsafe(24)
    return PreviewShare.objects.create(project=project, token_hash=_hash(token)), token


def share_url(project, token: str) -> str:
    return f"{preview_origin(project.pk)}/__preview/share/{token}"


def grant_for_share_token(token: str, project_id: int) -> Grant | None:
    if not token or len(token) > 100:
        return None
    share = PreviewShare.objects.filter(
        token_hash=_hash(token), project_id=project_id, revoked_at__isnull=True
    ).only("pk").first()
    return Grant(project_id, share_id=share.pk) if share else None


def revoke_share(project, share_id: int) -> bool:
    """True when an active share of ``project`` was revoked now."""
    return bool(
        PreviewShare.objects.filter(project=project, pk=share_id, revoked_at__isnull=True).update(revoked_at=timezone.now())
    )


def check(grant: Grant) -> Access | None:
    """The grant's access now (one query), or None: the owner no longer owns the project or was
    deactivated, the share was revoked, the project is gone."""
    sandbox = (
        Sandbox.objects.filter(project_id=grant.project_id)
        .select_related("project__user")
        .only("pk", "status", "app_upstream", "project__user_id", "project__user__is_active")
        .first()
    )
    if sandbox is None:
        return None
    project = sandbox.project
    if grant.user_id is not None:
        if project.user_id != grant.user_id or not project.user.is_active:
            return None
        owner = True
    else:
        if not PreviewShare.objects.filter(pk=grant.share_id, project_id=grant.project_id, revoked_at__isnull=True).exists():
            return None
        owner = False
    upstream = sandbox.app_upstream
    return Access(
        project_id=grant.project_id,
        owner=owner,
        sandbox_id=sandbox.pk,
        sandbox_status=sandbox.status,
        upstream=upstream,
        app_port=upstream.rsplit(":", 1)[-1] if upstream else "",
    )


def wake_for_owner(project_id: int) -> bool:
    """Opening the preview of a project the idle stop stopped starts it, as opening its terminal
    does (projects.services.do_wake_project); a stop the user chose stays. True when it started."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return False
    try:
        return services.do_wake_project(project)
    except services.QuotaExceeded:
        return False
