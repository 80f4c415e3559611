from django.contrib import admin

from databases.models import Database
from identities.encryption import mask
from projects.models import Environment, Project
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


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "status", "k8s_name", "created"]
    list_filter = ["status"]
    search_fields = ["name", "user__username", "k8s_name"]
    raw_id_fields = ["user"]
    readonly_fields = ["k8s_name", "status", "created", "updated"]
    inlines = [SandboxInline, DatabaseInline, EnvironmentInline]


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
