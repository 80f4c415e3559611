from django.contrib import admin

from databases.models import Database
from fullstackagent.encryption import mask
from projects.models import Environment, Project, ResourceEvent
from sandboxes.models import Sandbox


class SandboxInline(admin.TabularInline):
    model = Sandbox
    extra = 0
    fields = ["name", "status", "public_url", "last_error", "updated"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False


class DatabaseInline(admin.TabularInline):
    model = Database
    extra = 0
    fields = ["name", "status", "last_error", "updated"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False


class EnvironmentInline(admin.TabularInline):
    model = Environment
    extra = 0
    fields = ["key", "category", "is_secret", "shown_value", "updated"]
    readonly_fields = fields
    can_delete = False

    @admin.display(description="value")
    def shown_value(self, variable):
        return mask(variable.value) if variable.is_secret else variable.value[:200]


class ResourceEventInline(admin.TabularInline):
    """The project's history, read-only: events are written by the services and the engine only."""

    model = ResourceEvent
    extra = 0
    fields = ["created", "resource_kind", "resource_name", "from_status", "to_status", "cause", "reason"]
    readonly_fields = fields
    can_delete = False
    ordering = ["-created", "-id"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "status", "k8s_name", "created"]
    list_filter = ["status"]
    search_fields = ["name", "user__username", "k8s_name"]
    raw_id_fields = ["user"]
    readonly_fields = ["k8s_name", "status", "created", "updated"]
    inlines = [SandboxInline, DatabaseInline, EnvironmentInline, ResourceEventInline]


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["key", "project", "category", "is_secret", "shown_value", "updated"]
    list_filter = ["category", "is_secret"]
    search_fields = ["key", "project__name", "project__user__username"]
    raw_id_fields = ["project"]
    exclude = ["value"]
    readonly_fields = ["shown_value", "created", "updated"]

    @admin.display(description="value")
    def shown_value(self, variable):
        return mask(variable.value) if variable.is_secret else variable.value[:200]
