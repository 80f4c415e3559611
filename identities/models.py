from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from fullstackagent.encryption import EncryptedJSONField, EncryptedTextField


class IdentityProvider(models.TextChoices):
    PASSWORD = "PASSWORD", "Username and password"
    GITHUB = "GITHUB", "GitHub"
    SEALOS = "SEALOS", "Sealos"


class UserIdentity(models.Model):
    """One way for a user to sign in: a provider and the user's id at that provider.

    A user may hold several; exactly one of them is primary (the partial unique constraint keeps
    at most one, the link/unlink services keep at least one).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="identities")
    provider = models.CharField(max_length=16, choices=IdentityProvider.choices)
    provider_user_id = models.CharField(max_length=255)
    # Provider data, OAuth access tokens included, so the whole document is encrypted.
    metadata = EncryptedJSONField(default=dict, blank=True)
    is_primary = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "user identities"
        constraints = [
            models.UniqueConstraint(fields=["provider", "provider_user_id"], name="identity_provider_user_unique"),
            models.UniqueConstraint(
                fields=["user"], condition=Q(is_primary=True), name="identity_one_primary_per_user"
            ),
        ]

    def __str__(self):
        return f"{self.get_provider_display()}:{self.provider_user_id}"


class ConfigCategory(models.TextChoices):
    KUBERNETES = "kubernetes", "Kubernetes"
    ANTHROPIC = "anthropic", "Anthropic"
    AGENT = "agent", "Agent"
    GENERAL = "general", "General"


class ConfigKey:
    """Keys of UserConfig rows that the platform itself reads."""

    KUBECONFIG = "KUBECONFIG"
    ANTHROPIC_API_KEY = "ANTHROPIC_API_KEY"
    ANTHROPIC_BASE_URL = "ANTHROPIC_BASE_URL"
    ANTHROPIC_MODEL = "ANTHROPIC_MODEL"
    ANTHROPIC_SMALL_FAST_MODEL = "ANTHROPIC_SMALL_FAST_MODEL"
    SYSTEM_PROMPT = "SYSTEM_PROMPT"

    SECRET = frozenset({KUBECONFIG, ANTHROPIC_API_KEY})


class UserConfig(models.Model):
    """One per-user setting (kubeconfig, Anthropic key, system prompt, ...).

    Every value is encrypted at rest, secret or not, so flipping ``is_secret`` can never expose a
    value that was stored in clear; ``is_secret`` decides masking in pages and responses.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="configs")
    key = models.CharField(max_length=128)
    value = EncryptedTextField(blank=True)
    category = models.CharField(max_length=32, choices=ConfigCategory.choices, default=ConfigCategory.GENERAL)
    is_secret = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="userconfig_user_key_unique")]

    def __str__(self):
        return f"{self.user} {self.key}"


class ApiToken(models.Model):
    """A personal API token: a script sends it as ``Authorization: Bearer <token>`` and acts as the user.

    Only a SHA-256 hash of the token is stored. The token carries 256 random bits, so a fast hash
    is enough (no one can guess their way through the space) and lets a request find its row with
    one indexed lookup. The clear token is shown once, when it is created (identities.tokens).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=64)
    # The first characters of the clear token, so a user can tell their tokens apart; not secret.
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    # Updated at most once a minute (identities.tokens.LAST_USED_PRECISION) to keep requests cheap.
    last_used = models.DateTimeField(null=True, blank=True)
    # When the user revoked it; a revoked token never authenticates again.
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["user", "-created"], name="apitoken_user_created_idx")]

    def __str__(self):
        return f"{self.user} {self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked is None


class UserQuota(models.Model):
    """An operator's limits for one user (Django admin); a user without a row, or an empty field,
    gets the default from settings (QUOTA_*). Enforced by projects.services when a project is made
    or started. Also holds the user's idle stop, which the user sets on the Settings page (an
    operator sees and may change it here)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota")
    max_projects = models.PositiveIntegerField(
        null=True, blank=True, help_text="Projects the user may have (not deleted). Empty: QUOTA_PROJECTS. 0: none."
    )
    max_running_sandboxes = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Sandboxes that may run (or be starting) at once. Empty: QUOTA_RUNNING_SANDBOXES. 0: none.",
    )
    sandbox_cpu = models.CharField(
        max_length=16,
        blank=True,
        validators=[RegexValidator(r"^[0-9]+(\.[0-9]+)?m?$", "A Kubernetes CPU quantity, e.g. 2, 1.5 or 500m.")],
        help_text='Kubernetes: CPU limit of each sandbox pod, e.g. "2" or "500m". Empty: QUOTA_SANDBOX_CPU.'
    )
    sandbox_memory = models.CharField(
        max_length=16,
        blank=True,
        validators=[RegexValidator(r"^[0-9]+(Ki|Mi|Gi|Ti)?$", "A Kubernetes memory quantity, e.g. 4Gi or 512Mi.")],
        help_text='Kubernetes: memory limit of each sandbox pod, e.g. "4Gi". Empty: QUOTA_SANDBOX_MEMORY.'
    )
    idle_stop_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Minutes a sandbox nobody and nothing uses runs before it is stopped (the user sets it in "
        "Settings). Empty: IDLE_STOP_MINUTES. 0: never.",
    )

    def __str__(self):
        return f"quota of {self.user}"

    # Each limit: its name, the field that holds it here, the setting with its default.
    LIMITS = (
        ("projects", "max_projects", "QUOTA_PROJECTS"),
        ("running_sandboxes", "max_running_sandboxes", "QUOTA_RUNNING_SANDBOXES"),
        ("sandbox_cpu", "sandbox_cpu", "QUOTA_SANDBOX_CPU"),
        ("sandbox_memory", "sandbox_memory", "QUOTA_SANDBOX_MEMORY"),
        ("idle_stop_minutes", "idle_stop_minutes", "IDLE_STOP_MINUTES"),
    )
    # The fields in that order, the order limits_from() takes their values in.
    LIMIT_FIELDS = tuple(field for _, field, _ in LIMITS)

    @classmethod
    def limits_for(cls, user_id: int) -> dict:
        """The user's limits: their row's values where set, the settings' defaults otherwise."""
        row = cls.objects.filter(user_id=user_id).values_list(*cls.LIMIT_FIELDS).first()
        return cls.limits_from(row or (None,) * len(cls.LIMIT_FIELDS))

    @classmethod
    def limits_from(cls, values) -> dict:
        """Limits from a row's LIMIT_FIELDS values (None for a user without a row): an empty value
        takes the settings' default."""
        return {
            name: getattr(settings, setting) if value in (None, "") else value
            for (name, _, setting), value in zip(cls.LIMITS, values, strict=True)
        }

