"""Project pages, the terminal page with its status and upload endpoints (projects.terminal_views)."""

from django.urls import path

from projects import terminal_views, views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/cards/", views.project_cards, name="project-cards"),
    path("projects/<int:project_id>/", views.project_home, name="project-home"),
    path("projects/<int:project_id>/terminal/", terminal_views.terminal_page, name="project-terminal"),
    path("projects/<int:project_id>/terminal/status", terminal_views.terminal_status, name="project-terminal-status"),
    path("projects/<int:project_id>/terminal/upload", terminal_views.terminal_upload, name="project-terminal-upload"),
    path("projects/<int:project_id>/status-bar/", views.project_status_bar, name="project-status-bar"),
    path("projects/<int:project_id>/start/", views.project_action, {"action": "start"}, name="project-start"),
    path("projects/<int:project_id>/stop/", views.project_action, {"action": "stop"}, name="project-stop"),
    path("projects/<int:project_id>/delete/", views.project_action, {"action": "delete"}, name="project-delete"),
    path("projects/<int:project_id>/restart/", views.project_action, {"action": "restart"}, name="project-restart"),
    path(
        "projects/<int:project_id>/database/recreate/",
        views.project_action,
        {"action": "recreate-database"},
        name="project-database-recreate",
    ),
    path(
        "projects/<int:project_id>/workspace/recreate/",
        views.project_action,
        {"action": "recreate-workspace"},
        name="project-workspace-recreate",
    ),
    path("projects/<int:project_id>/database/", views.database_page, name="project-database"),
    path("projects/<int:project_id>/history/", views.history_page, name="project-history"),
    path("projects/<int:project_id>/environment/", views.environment_page, name="project-environment"),
    path("projects/<int:project_id>/secrets/", views.secrets_page, name="project-secrets"),
    path("projects/<int:project_id>/auth/", views.auth_page, name="project-auth"),
    path("projects/<int:project_id>/payment/", views.payment_page, name="project-payment"),
    path(
        "projects/<int:project_id>/variables/<int:variable_id>/delete/",
        views.delete_variable,
        name="project-variable-delete",
    ),
]
