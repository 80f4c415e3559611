from django.contrib import admin
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from fullstackagent.admin_sign_in import admin_sign_in
from fullstackagent.exceptions import api_not_found
from fullstackagent.metrics import API_NOT_FOUND, PAGE_NOT_FOUND
from fullstackagent.site_pages import unknown_path
from previews.urls import api_urlpatterns as preview_api_urls


def favicon(request):
    """Pages without an icon of their own (the browsable API) make browsers ask for this one.
    Resolved per request: the manifest of collected static files is not read at import."""
    return redirect(static("favicon.svg"))


# Everything under /api/, ending with the API's JSON 404 for any other path under it.
api_urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file of its own: no inline script (CSP).
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("projects.api_urls")),
    path("", include(preview_api_urls)),
    re_path(r"", api_not_found, name=API_NOT_FOUND),
]

urlpatterns = [
    # First, and one prefix: most requests are the API's, and resolving one (or its 404) then
    # walks no page route (a tenth of an API 404's CPU went into trying every page pattern).
    path("api/", include(api_urlpatterns)),
    # Before the admin's own: operators sign in through the site's sign-in and its limits.
    path("admin/login/", admin_sign_in),
    path("admin/", admin.site.urls),
    path("", include("fullstackagent.health")),
    # For operators' Prometheus: a token or an allowed network, never a sign-in (README "Metrics").
    path("", include("fullstackagent.metrics_endpoint")),
    path("favicon.ico", favicon),
    path("accounts/", include("allauth.urls")),
    path("identities/", include("identities.urls")),
    path("", include("previews.urls")),
    path("settings/", include("identities.settings_urls")),
    path("", include("projects.urls")),
    # Last: any other path gets the site's own page (or the same path with a slash, when that is
    # one), never Django's debug list of every route.
    re_path(r"", unknown_path, name=PAGE_NOT_FOUND),
]

handler404 = "fullstackagent.site_pages.not_found"
handler500 = "fullstackagent.site_pages.server_error"
