from django.contrib import admin

from fullstackagent.encryption import mask
from identities.models import UserConfig, UserIdentity, UserQuota


@admin.register(UserIdentity)
class UserIdentityAdmin(admin.ModelAdmin):
    list_display = ["user", "provider", "provider_user_id", "is_primary", "created"]
    list_filter = ["provider", "is_primary"]
    search_fields = ["user__username", "provider_user_id"]
    raw_id_fields = ["user"]
    # The metadata may hold OAuth tokens: shown as its keys only, never edited here.
    exclude = ["metadata"]
    readonly_fields = ["metadata_keys", "created", "updated"]

    @admin.display(description="metadata")
    def metadata_keys(self, identity):
        return ", ".join(sorted(identity.metadata)) or "—"


@admin.register(UserConfig)
class UserConfigAdmin(admin.ModelAdmin):
    list_display = ["user", "key", "category", "is_secret", "shown_value", "updated"]
    list_filter = ["category", "is_secret"]
    search_fields = ["user__username", "key"]
    raw_id_fields = ["user"]
    exclude = ["value"]
    readonly_fields = ["shown_value", "created", "updated"]

    @admin.display(description="value")
    def shown_value(self, config):
        return mask(config.value) if config.is_secret else config.value[:200]


@admin.register(UserQuota)
class UserQuotaAdmin(admin.ModelAdmin):
    list_display = ["user", "max_projects", "max_running_sandboxes", "sandbox_cpu", "sandbox_memory", "idle_stop_minutes"]
    search_fields = ["user__username"]
    raw_id_fields = ["user"]
