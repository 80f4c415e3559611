"""ASGI entry point: HTTP through Django (on a thread pool, fullstackagent.threaded_http),
websockets through Channels (the terminal proxy), preview hosts through the preview proxy."""

import gc
import os

import django

# No collection while the platform loads: each one walked the heap it was growing, about a tenth of a
# web process's start (the objects loaded stay for the process's life, see gc.freeze() below).
gc.disable()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fullstackagent.settings")
# Django must be set up before importing anything that touches models.
django.setup(set_prefix=False)

from fullstackagent.threaded_http import ThreadedDjangoHTTP  # noqa: E402

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.sessions import CookieMiddleware, SessionMiddleware  # noqa: E402

from fullstackagent.routing import websocket_urlpatterns  # noqa: E402
from previews.proxy import PreviewRouter  # noqa: E402

platform = ProtocolTypeRouter(
    {
        "http": ThreadedDjangoHTTP(),
        # The session for websockets; the terminal consumer resolves its user itself, in the same
        # thread hop as the rest of its admission (channels' AuthMiddleware would spend one more,
        # on a thread shared by every connection). The Origin check is the consumer's too (it
        # answers with a distinct close code instead of a bare handshake refusal).
        "websocket": CookieMiddleware(SessionMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
# Requests for <project>.<PREVIEW_DOMAIN> go to the preview proxy, before any of the platform's
# middleware or session: the app's origin is not the platform's (previews.proxy).
application = PreviewRouter(platform)

# Django, DRF and the URL and template machinery just loaded are alive for the life of the process:
# moved out of the collector's sight, a full collection no longer walks them. Without this each
# full collection stopped every request in the process for 50-80 ms (bench/api.py: the p99 of a
# no-op request went from about 80 ms to 29 ms).
gc.collect()
gc.freeze()
gc.enable()
