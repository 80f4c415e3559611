"""Websocket routes of the sandboxes app (the terminal proxy)."""

from django.urls import path

from sandboxes.consumers import TerminalConsumer

websocket_urlpatterns = [
    path("ws/projects/<int:project_id>/terminal/", TerminalConsumer.as_asgi(), name="project-terminal-socket"),
]
