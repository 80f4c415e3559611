"""Pages and endpoints of the web terminal (the websocket route is in sandboxes.routing)."""

from django.urls import path

from sandboxes import views

urlpatterns = [
    path("projects/<int:project_id>/terminal/", views.terminal_page, name="project-terminal"),
    path("projects/<int:project_id>/terminal/status", views.terminal_status, name="project-terminal-status"),
    path("projects/<int:project_id>/terminal/upload", views.terminal_upload, name="project-terminal-upload"),
]
