"""Hostile input answered with a clear 4xx before it reaches a view or the database.

``BadInputMiddleware`` refuses a NUL character anywhere in the query string or a posted form (no
field of this platform may hold one; PostgreSQL refuses them in text, which was a 500 on
``/?q=%00`` and on a project's description), and answers the read and storage errors the
exception handler knows (fullstackagent.exceptions.bad_input_failure) on the pages as the API
does: 413 for a body over Django's limit, 400 otherwise. Under /api/, or for a client asking for
JSON, the answer has the API's error shape; pages get a short HTML one.
"""

import html
import logging

from django.contrib.messages import middleware as messages_middleware
from django.contrib.messages.storage import default_storage
from django.http import HttpResponse, JsonResponse
from django.utils.functional import SimpleLazyObject, empty

from fullstackagent.exceptions import ApiFailure, bad_input_failure

logger = logging.getLogger(__name__)

NUL_REFUSED = ApiFailure("A value in the request contains a NUL character, which no field accepts.", "NUL_CHARACTER", 400)


def _contains_nul(query_dict) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in query_dict.lists())


def failure_response(request, failure: ApiFailure):
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"message": str(failure.detail), "code": failure.detail.code}, status=failure.status_code)
    message = html.escape(str(failure.detail))
    return HttpResponse(
        f"<!DOCTYPE html><html><head><title>Request refused</title></head><body><h1>Request refused</h1>"
        f"<p>{message}</p><p><a href=\"/\">Back to your projects</a></p></body></html>",
        status=failure.status_code,
        content_type="text/html; charset=utf-8",
    )


class BadInputMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            # request.POST parses form bodies only (the upload's octet-stream and JSON are left
            # to their views); CsrfViewMiddleware would parse it just after anyway.
            refused = _contains_nul(request.GET) or (request.method == "POST" and _contains_nul(request.POST))
        except Exception as error:
            failure = bad_input_failure(error)
            if failure is None:
                raise
            return failure_response(request, failure)
        if refused:
            return failure_response(request, NUL_REFUSED)
        return self.get_response(request)

    def process_exception(self, request, exception):
        failure = bad_input_failure(exception)
        if failure is None:
            return None
        logger.info("refused bad input on %s: %s", request.path, type(exception).__name__)
        return failure_response(request, failure)


class MessageMiddleware(messages_middleware.MessageMiddleware):
    """Django's MessageMiddleware, whose storage is made when a message is added or read.

    Django's builds the storage for every request (a cookie store with its signer, a session
    store), although only a page that adds or shows a message uses it: the API, the terminal's
    upload and every 404 do not (3 % of an API 404's CPU, py-spy). Made lazily, a request that never
    touches it also has nothing to write into the response."""

    def process_request(self, request):
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request, response):
        messages = getattr(request, "_messages", None)
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response
        return super().process_response(request, response)
