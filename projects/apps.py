from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"

    def ready(self):
        # Records the reconcile engine's status transitions as events (projects.events), and
        # re-applies sandbox environments when a user setting changes (projects.receivers).
        from projects import events, receivers  # noqa: F401
