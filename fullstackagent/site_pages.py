"""The site's own "not found" and "server error" pages.

Django's debug 404 page lists every URL pattern of the platform and its 500 page shows settings; a
user must see neither, in development (make run runs with DEBUG on) or in production. Unknown paths
end at the catch-all route in fullstackagent.urls; a view's Http404 (another user's project, a
missing one) is turned into the same page by NotFoundPageMiddleware, which Django's own handler
would not do while DEBUG is on. Paths under /api/ keep the API's JSON errors.
"""

from django.http import Http404, HttpResponsePermanentRedirect, HttpResponseServerError
from django.shortcuts import render
from django.template import loader
from django.urls import Resolver404, resolve
from django.utils.http import escape_leading_slashes


def not_found(request, exception=None):
    return render(request, "404.html", status=404)


def unknown_path(request):
    """The catch-all route: Django's APPEND_SLASH, which the catch-all would defeat (every path
    resolves), done here, on the way to the 404 page only: ``/settings`` is sent to ``/settings/``
    when that is a page. A GET or HEAD only: a redirected POST would lose its body."""
    if request.method in ("GET", "HEAD") and not request.path_info.endswith("/"):
        try:
            match = resolve(request.path_info + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not unknown_path:
            # As CommonMiddleware does: '//host/…' must not become a redirect to another site.
            return HttpResponsePermanentRedirect(escape_leading_slashes(request.get_full_path(force_append_slash=True)))
    return not_found(request)


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
