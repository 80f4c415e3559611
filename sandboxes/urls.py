"""Endpoints of the web terminal. The page itself, /projects/<id>/terminal/ (`project-terminal`), is
routed with the other project pages in projects/urls.py; the websocket is in sandboxes.routing."""

from django.urls import path

from sandboxes import views

urlpatterns = [
    path("projects/<int:project_id>/terminal/status", views.terminal_status, name="project-terminal-status"),
    path("projects/<int:project_id>/terminal/upload", views.terminal_upload, name="project-terminal-upload"),
]
