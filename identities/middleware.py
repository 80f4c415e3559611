"""Inside Sealos the whole app runs in an iframe of the Sealos desktop, not just the sign-in page."""

from django.conf import settings


class SealosFramingMiddleware:
    """With Sealos sign-in on and SEALOS_DESKTOP_ORIGINS set, every page may be framed by those
    origins (CSP frame-ancestors) and by no one else; otherwise X-Frame-Options: DENY stays.
    Listed after XFrameOptionsMiddleware, so it sees the response first and can exempt it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        origins = settings.SEALOS_DESKTOP_ORIGINS
        if settings.ENABLE_SEALOS_AUTH and origins:
            allow_sealos_framing(response, origins)
        return response


def allow_sealos_framing(response, origins) -> None:
    """The response may be framed by ``origins`` only: the CSP's frame-ancestors (written by
    django-csp's middleware, listed before this one, with the rest of the policy) instead of
    X-Frame-Options: DENY."""
    response._csp_replace = {**getattr(response, "_csp_replace", {}), "frame-ancestors": list(origins)}
    response.xframe_options_exempt = True
