from django.conf import settings
from django.db import models

from fullstackagent.models import ReconciledResource


class Sandbox(ReconciledResource):
    """The container (or local process) where a project's agent and terminal run."""

    # One per project (``project.sandbox``); a terminated one stays for the audit until the project goes.
    project = models.OneToOneField("projects.Project", on_delete=models.CASCADE, related_name="sandbox")
    # `<k8s project name>-agentruntime-<6 random>`: StatefulSet, Service and workspace name.
    name = models.CharField(max_length=63, unique=True)
    k8s_namespace = models.CharField(max_length=63, blank=True)
    public_url = models.URLField(blank=True)
    # The terminal's upstream address as the backend sees it; never sent to a browser.
    ttyd_url = models.CharField(max_length=255, blank=True)
    # Where the platform's preview proxy reaches the user's app (http://host:port); never shown.
    app_upstream = models.CharField(max_length=255, blank=True)
    # Checksum of the environment the running sandbox was given; compared with the desired one.
    applied_environment_hash = models.CharField(max_length=64, blank=True)
    # The user asked to restart it (every process ends; needed for running processes to take a new
    # environment, which otherwise reaches new shells only). Cleared by the step that restarts it.
    restart_requested = models.BooleanField(default=False)
    # The user chose to start again with an empty workspace after it was found gone (its files
    # lost). Never done without asking. Cleared by the step that does it.
    recreate_requested = models.BooleanField(default=False)
    # The last sign of use: terminal or preview traffic, the agent or a keep-awake process working
    # (sandboxes.activity, sandboxes.idle). Written at most every ~30 s per process, never per frame;
    # a RUNNING sandbox unused for its owner's IDLE_STOP_MINUTES since then is stopped.
    last_activity_at = models.DateTimeField(null=True, blank=True)

    class Meta(ReconciledResource.Meta):
        verbose_name_plural = "sandboxes"

    def __str__(self):
        return self.name


class TerminalSession(models.Model):
    """Audit entry: one browser terminal connection through the platform."""

    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="terminal_sessions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="terminal_sessions")
    session_name = models.CharField(max_length=32, default="main")
    client_address = models.CharField(max_length=64, blank=True)
    started = models.DateTimeField(auto_now_add=True)
    ended = models.DateTimeField(null=True, blank=True)
    bytes_from_browser = models.BigIntegerField(default=0)
    bytes_to_browser = models.BigIntegerField(default=0)
    close_code = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started"]

    def __str__(self):
        return f"{self.user} → {self.sandbox} ({self.started:%Y-%m-%d %H:%M})"
