"""The site's own "not found" and "server error" pages.

Django's debug 404 page lists every URL pattern of the platform and its 500 page shows settings; a
user must see neither, in development (make run runs with DEBUG on) or in production. Unknown paths
end at the catch-all route in fullstackagent.urls; a view's Http404 (another user's project, a
missing one) is turned into the same page by NotFoundPageMiddleware, which Django's own handler
would not do while DEBUG is on. Paths under /api/ keep the API's JSON errors.
"""

from django.http import Http404, HttpResponseServerError
from django.shortcuts import render
from django.template import loader


def not_found(request, exception=None):
    return render(request, "404.html", status=404)


def server_error(request):
    # No context processors: whatever broke the request (the database, a setting) may break them.
    return HttpResponseServerError(loader.get_template("500.html").render())


class NotFoundPageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, Http404) and not request.path.startswith("/api/"):
            return not_found(request, exception)
        return None
