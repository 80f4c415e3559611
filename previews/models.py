"""Who may open a project's preview besides its owner's browser: one-time hand-offs from the
platform (how the owner's browser gets the preview's own cookie) and revocable share links.
Tokens are stored as SHA-256 hashes only; the clear value exists in one URL."""

from django.conf import settings
from django.db import models


class PreviewHandoff(models.Model):
    """A single-use, short-lived ticket: the platform (where the owner is signed in) makes one and
    redirects to the preview origin, which consumes it and sets its own cookie."""

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(db_index=True)


class PreviewShare(models.Model):
    """A link the owner gives others: whoever opens it sees the preview until it is revoked."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="preview_shares")
    token_hash = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"share {self.pk} of project {self.project_id}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None
