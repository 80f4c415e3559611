"""Websocket routes of the sandboxes app (the terminal proxy)."""

websocket_urlpatterns = []
