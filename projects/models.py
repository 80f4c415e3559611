from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from fullstackagent.encryption import EncryptedTextField
from fullstackagent.status import ProjectStatus, ResourceStatus, TransitionCause


class ProjectQuerySet(models.QuerySet):
    def visible(self):
        """Projects a user still sees: all but the fully terminated (kept as soft deletes)."""
        return self.exclude(status=ProjectStatus.TERMINATED)

    def owned_by(self, user):
        return self.filter(user=user)


class Project(models.Model):
    """An app a user builds: one sandbox and one database, plus its environment variables."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=64)
    # Kubernetes-safe form of the name (projects.naming); not unique per user.
    k8s_name = models.CharField(max_length=20)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=ProjectStatus.choices, default=ProjectStatus.CREATING)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            # The projects page: a user's visible projects, newest first.
            models.Index(fields=["user", "-created"], name="project_user_created_idx"),
        ]

    def __str__(self):
        return self.name


class EnvironmentCategory(models.TextChoices):
    AUTH = "auth", "Auth"
    PAYMENT = "payment", "Payment"
    TTYD = "ttyd", "Terminal"
    GENERAL = "general", "General"
    SECRET = "secret", "Secret"


class Environment(models.Model):
    """One environment variable of a project, given to its sandbox.

    Values are always encrypted at rest; ``is_secret`` decides masking. The terminal token is a row
    of category ``ttyd`` that no page or response ever shows.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="environment")
    key = models.CharField(max_length=128)
    value = EncryptedTextField(blank=True)
    category = models.CharField(
        max_length=16, choices=EnvironmentCategory.choices, default=EnvironmentCategory.GENERAL
    )
    is_secret = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["category", "key"]
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="environment_project_key_unique"),
            # Secret and terminal-token variables are always secret (the original let them drift apart).
            models.CheckConstraint(
                condition=~Q(category__in=["secret", "ttyd"]) | Q(is_secret=True),
                name="environment_secret_categories_are_secret",
            ),
        ]

    def __str__(self):
        return f"{self.project_id}:{self.key}"


class ResourceKind(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox"
    DATABASE = "database", "Database"


class ResourceEvent(models.Model):
    """One status transition of one of a project's resources, with why and who caused it (like a
    Kubernetes event): "why is my project in ERROR" keeps its answer after the next step
    overwrote ``last_error``. Written in the transaction that changes the status."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="events")
    resource_kind = models.CharField(max_length=16, choices=ResourceKind.choices)
    resource_id = models.BigIntegerField()
    resource_name = models.CharField(max_length=63)
    # Empty for the event that records the resource's creation.
    from_status = models.CharField(max_length=16, choices=ResourceStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=ResourceStatus.choices)
    reason = models.TextField(blank=True)
    cause = models.CharField(max_length=16, choices=TransitionCause.choices)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            # The project page and GET /api/projects/{id}/events: one project's latest events.
            models.Index(fields=["project", "-created", "-id"], name="resource_event_project_idx"),
        ]

    def __str__(self):
        return f"{self.resource_name}: {self.from_status} → {self.to_status} ({self.cause})"


class IdempotencyKey(models.Model):
    """A client's ``Idempotency-Key`` on a project create, and the project it made: a retried
    create with the same key answers with that project instead of making a second one."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idempotency_keys")
    key = models.CharField(max_length=255)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_user_key_unique"),
        ]

    def __str__(self):
        return f"{self.user_id}:{self.key}"
