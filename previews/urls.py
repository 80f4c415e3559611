from django.urls import path

from previews import views

urlpatterns = [
    path("projects/<int:project_id>/preview/", views.open_preview, name="project-preview"),
    path("projects/<int:project_id>/preview/shares/", views.create_share, name="project-preview-share"),
    path(
        "projects/<int:project_id>/preview/shares/<int:share_id>/revoke/",
        views.revoke_share,
        name="project-preview-share-revoke",
    ),
]

api_urlpatterns = [
    path("projects/<int:project_id>/preview", views.PreviewDetail.as_view(), name="api-project-preview"),
    path("projects/<int:project_id>/preview/shares", views.PreviewShareCreate.as_view(), name="api-project-preview-shares"),
    path(
        "projects/<int:project_id>/preview/shares/<int:share_id>",
        views.PreviewShareRevoke.as_view(),
        name="api-project-preview-share",
    ),
]
