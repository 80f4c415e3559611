"""The API's content negotiation (REST_FRAMEWORK["DEFAULT_CONTENT_NEGOTIATION_CLASS"])."""

from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation


class JSONWhenUnsatisfiable(DefaultContentNegotiation):
    """DRF's, answering in the view's first renderer (JSON) when nothing in the Accept header can be
    had, instead of a 406 that no operation documents (RFC 9110 §12.5.1 lets a server disregard
    the header). ``?format=`` naming an unknown format stays DRF's 404."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            return renderers[0], renderers[0].media_type
