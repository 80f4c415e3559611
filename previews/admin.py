from django.contrib import admin

from previews.models import PreviewShare


@admin.register(PreviewShare)
class PreviewShareAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "created", "revoked_at"]
    list_filter = ["revoked_at"]
    readonly_fields = ["project", "token_hash", "created"]
    search_fields = ["project__name"]
