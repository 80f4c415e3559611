from django.contrib import admin

from sandboxes.models import Sandbox, TerminalSession


@admin.register(Sandbox)
class SandboxAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "status", "public_url", "last_error", "updated"]
    list_filter = ["status"]
    search_fields = ["name", "project__name", "project__user__username"]
    raw_id_fields = ["project"]
    readonly_fields = [
        # The status is the reconcile engine's: operators change it through the project's actions.
        "status", "last_error", "status_changed_at", "restarts", "last_restart_at", "next_check_at",
        "locked_until", "lease_token", "attempts", "observed_at", "runtime_state", "applied_environment_hash", "created", "updated"]


@admin.register(TerminalSession)
class TerminalSessionAdmin(admin.ModelAdmin):
    list_display = ["user", "sandbox", "session_name", "started", "ended", "bytes_from_browser", "bytes_to_browser", "close_code"]
    list_filter = ["close_code"]
    search_fields = ["user__username", "sandbox__name"]
    raw_id_fields = ["user", "sandbox"]
