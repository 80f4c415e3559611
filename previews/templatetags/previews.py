from django import template

from previews.hosts import preview_origin
from previews.models import PreviewShare

register = template.Library()


@register.simple_tag
def preview_address(project_id: int) -> str:
    """The preview's origin as people read it (p12.preview.example.com), for link texts; the link
    itself goes to the platform's hand-off (`project-preview`)."""
    return preview_origin(project_id).split("://", 1)[1]


@register.simple_tag
def preview_shares(project_id: int):
    """The project's share links that still work, newest first (the terminal page lists them)."""
    return list(PreviewShare.objects.filter(project_id=project_id, revoked_at__isnull=True))
