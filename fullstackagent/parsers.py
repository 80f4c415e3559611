"""The API's request parsers (REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"])."""

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, answering a body nested too deeply for Python's parser with a 400
    (json raises RecursionError, which is not a ValueError, so DRF let it through as a 500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the document is nested too deeply.") from None
