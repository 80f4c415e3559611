from django.contrib import admin

from databases.models import Database
from fullstackagent.encryption import mask


@admin.register(Database)
class DatabaseAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "status", "last_error", "updated"]
    list_filter = ["status"]
    search_fields = ["name", "project__name", "project__user__username"]
    raw_id_fields = ["project"]
    exclude = ["connection_url"]
    readonly_fields = [
        # The status is the reconcile engine's: operators change it through the project's actions.
        "status", "last_error", "status_changed_at", "restarts", "last_restart_at", "next_check_at",
        "masked_connection_url", "locked_until", "lease_token", "attempts", "observed_at", "runtime_state", "created", "updated"]

    @admin.display(description="connection URL")
    def masked_connection_url(self, database):
        return mask(database.connection_url)
