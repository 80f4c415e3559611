"""Websocket routes, collected from the apps that own them."""

from sandboxes.routing import websocket_urlpatterns as sandbox_routes

websocket_urlpatterns = [*sandbox_routes]
