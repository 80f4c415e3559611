from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from fullstackagent.exceptions import api_not_found
from fullstackagent.site_pages import not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("fullstackagent.health")),
    path("accounts/", include("allauth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("projects.api_urls")),
    path("identities/", include("identities.urls")),
    path("", include("sandboxes.urls")),
    path("settings/", include("identities.settings_urls")),
    path("", include("projects.urls")),
    # Last: any other path under /api/ gets the API's JSON 404 instead of the HTML page...
    re_path(r"^api/", api_not_found),
    # ...and any other path at all the site's own page, never Django's debug list of every route.
    re_path(r"", not_found),
]

handler404 = "fullstackagent.site_pages.not_found"
handler500 = "fullstackagent.site_pages.server_error"
