from django.urls import path

from projects import api

urlpatterns = [
    path("projects", api.ProjectListCreate.as_view(), name="api-projects"),
    path("projects/<int:project_id>", api.ProjectDetail.as_view(), name="api-project"),
    path("projects/<int:project_id>/start", api.ProjectStart.as_view(), name="api-project-start"),
    path("projects/<int:project_id>/stop", api.ProjectStop.as_view(), name="api-project-stop"),
    path("projects/<int:project_id>/delete", api.ProjectDelete.as_view(), name="api-project-delete"),
]
