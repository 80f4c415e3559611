from django.contrib import admin

from previews.models import PreviewShare


@admin.register(PreviewShare)
class PreviewShareAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "created", "revoked_at"]
    list_filter = ["revoked_at"]
    # The link itself is shown once to its owner; only its hash is stored, and not shown here.
    fields = ["project", "created", "revoked_at"]
    readonly_fields = ["project", "created"]
    search_fields = ["project__name"]
