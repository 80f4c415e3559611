from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"

    def ready(self):
        # Records the reconcile engine's status transitions as events (projects.events).
        from projects import events  # noqa: F401
