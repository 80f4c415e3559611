"""ASGI entry point: HTTP through Django, websockets through Channels (the terminal proxy)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fullstackagent.settings")
# Django must be set up before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.sessions import CookieMiddleware, SessionMiddleware  # noqa: E402
from channels.auth import AuthMiddleware  # noqa: E402

from fullstackagent.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Session authentication for websockets; the Origin check is the consumer's (it answers
        # with a distinct close code instead of a bare handshake refusal).
        "websocket": CookieMiddleware(SessionMiddleware(AuthMiddleware(URLRouter(websocket_urlpatterns)))),
    }
)
