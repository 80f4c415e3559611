"""One error shape for the whole API: ``{"message": str, "code": str, "fields"?: {name: [str]}}``.

``message`` is one sentence a person can act on; ``code`` is stable and machine-readable
(``INVALID_NAME``, ``KUBECONFIG_MISSING``, ``NOT_FOUND``, ...); ``fields`` names each input that was
refused (nested inputs as ``variables[0].key``). Wired as REST_FRAMEWORK["EXCEPTION_HANDLER"];
``api_not_found`` answers unknown paths under /api/ in the same shape.
"""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import UnreadablePostError
from django.http import Http404, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from fullstackagent import availability

logger = logging.getLogger(__name__)

SERVER_ERROR_MESSAGE = "Something went wrong on our side. Try again; if it keeps happening, tell the operators."


class ApiError(serializers.Serializer):
    """The error body, for the OpenAPI schema (every documented 4xx/5xx uses it)."""

    message = serializers.CharField()
    code = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


def errors(*codes: int) -> dict:
    """OpenAPI responses for the error statuses an operation can answer: 401 always, and with 400
    (an operation that reads a body) 413 and 415: a body over REQUEST_BODY_MAX_BYTES, or one it
    cannot parse as its content type."""
    codes = {401, *codes} | ({413, 415} if 400 in codes else set())
    return {code: ApiError for code in sorted(codes)}


class ApiFailure(exceptions.APIException):
    """A refusal a view raises with its own code, e.g. ApiFailure("...", "KUBECONFIG_MISSING")."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, code: str, status_code: int = status.HTTP_400_BAD_REQUEST, fields=None):
        super().__init__(message, code)
        self.status_code = status_code
        self.fields = fields


def _flatten(detail, prefix: str = "") -> dict[str, list]:
    """DRF's nested error detail → {"variables[0].key": [ErrorDetail, ...]}."""
    flat: dict[str, list] = {}
    if isinstance(detail, dict):
        for name, value in detail.items():
            # DRF reports list items by integer index: variables[1].key, like the list form below.
            if isinstance(name, int):
                key = f"{prefix}[{name}]"
            else:
                key = name if not prefix else f"{prefix}.{name}"
            flat.update(_flatten(value, key))
    elif isinstance(detail, list) and detail and all(isinstance(item, (dict, list)) for item in detail):
        for index, value in enumerate(detail):
            flat.update(_flatten(value, f"{prefix}[{index}]"))
    elif isinstance(detail, list):
        flat[prefix or "non_field_errors"] = [item for item in detail]
    else:
        flat[prefix or "non_field_errors"] = [detail]
    return flat


def _validation_body(detail) -> dict:
    flat = {name: errors for name, errors in _flatten(detail).items() if errors}
    first_field, first_errors = next(iter(flat.items()), ("non_field_errors", ["Invalid input."]))
    first = first_errors[0]
    code = getattr(first, "code", None) or "invalid"
    body = {"message": str(first), "code": str(code).upper()}
    fields = {name: [str(error) for error in errors] for name, errors in flat.items() if name != "non_field_errors"}
    if fields:
        body["fields"] = fields
    return body


def _django_validation_detail(error: DjangoValidationError):
    """A service's ValidationError (Django's) as DRF detail, keeping each message's code."""

    def details(errors):
        return [
            serializers.ErrorDetail(message, code=getattr(item, "code", None) or "invalid")
            for item in errors
            for message in item.messages
        ]

    if hasattr(error, "error_dict"):
        return {field: details(errors) for field, errors in error.error_dict.items()}
    return details(error.error_list)


def too_large_message(limit: int) -> str:
    return f"The request body is larger than this endpoint accepts ({_size(limit)}); nothing was done."


def _size(limit: int) -> str:
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


def bad_input_failure(exc) -> ApiFailure | None:
    """The client's fault behind an exception raised while a request is read or stored, as the
    4xx to answer; None for anything else (a server error).

    The one place that decides these answers, for the API (api_exception_handler) and the pages
    (fullstackagent.middleware.BadInputMiddleware) alike.
    """
    if isinstance(exc, RequestDataTooBig):
        return ApiFailure(too_large_message(settings.DATA_UPLOAD_MAX_MEMORY_SIZE), "REQUEST_TOO_LARGE", 413)
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return ApiFailure("The request has too many fields or files; nothing was done.", "TOO_MANY_FIELDS", 400)
    if isinstance(exc, MultiPartParserError):
        # A multipart Content-Type without a boundary, or a body that does not follow it.
        return ApiFailure("The body is not valid multipart form data; nothing was done.", "PARSE_ERROR", 400)
    if isinstance(exc, UnreadablePostError):
        return ApiFailure("The request body could not be read; send it again.", "UNREADABLE_BODY", 400)
    if isinstance(exc, DataError):
        # Validation keeps these out (NUL characters, dates out of range); should one still reach
        # PostgreSQL, it is the input that is wrong, not the server.
        return ApiFailure(
            "A value cannot be stored: it contains a NUL character or is out of range.", "INVALID_INPUT", 400
        )
    return None


def api_exception_handler(exc, context):
    headers = {}
    exc = bad_input_failure(exc) or exc
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_django_validation_detail(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif availability.is_database_unavailable(exc):
        exc = availability.database_unavailable()  # a 503 within a second, not a 500 (issue 13)

    if isinstance(exc, exceptions.ValidationError):
        body = _validation_body(exc.detail)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        if isinstance(detail, (list, dict)):
            body = _validation_body(detail)
        else:
            body = {"message": str(detail), "code": str(getattr(detail, "code", exc.default_code)).upper()}
        if getattr(exc, "fields", None):
            body["fields"] = exc.fields
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
    else:
        # Anything unexpected: logged with its traceback, answered without internals.
        view = context.get("view")
        logger.exception("unhandled error in %s", type(view).__name__ if view else "API view")
        set_rollback()
        return Response(
            {"message": SERVER_ERROR_MESSAGE, "code": "SERVER_ERROR"}, status=status.HTTP_500_INTERNAL_SERVER_ERROR
        )
    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)


@csrf_exempt  # it changes nothing; without this a POST/DELETE got Django's HTML 403 instead of the 404
def api_not_found(request, *args, **kwargs):
    """Unknown paths under /api/: the API's 404, not the HTML page."""
    return JsonResponse({"message": f"No API route {request.path}.", "code": "NOT_FOUND"}, status=404)
