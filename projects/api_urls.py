"""Routes under /api/: the original system's paths, without trailing slashes."""

from django.urls import path

from identities import api as identities_api
from projects import api

urlpatterns = [
    path("", api.ApiRoot.as_view(), name="api-root"),
    path("projects", api.ProjectListCreate.as_view(), name="api-projects"),
    path("projects/<int:project_id>", api.ProjectDetail.as_view(), name="api-project"),
    path("projects/<int:project_id>/events", api.ProjectEvents.as_view(), name="api-project-events"),
    path("projects/<int:project_id>/start", api.ProjectStart.as_view(), name="api-project-start"),
    path("projects/<int:project_id>/stop", api.ProjectStop.as_view(), name="api-project-stop"),
    path("projects/<int:project_id>/delete", api.ProjectDelete.as_view(), name="api-project-delete"),
    path("projects/<int:project_id>/restart", api.ProjectRestart.as_view(), name="api-project-restart"),
    path("projects/<int:project_id>/environment", api.EnvironmentListCreate.as_view(), name="api-environment"),
    path(
        "projects/<int:project_id>/environment/<int:variable_id>",
        api.EnvironmentDetail.as_view(),
        name="api-environment-variable",
    ),
    path(
        "projects/<int:project_id>/environment/<int:variable_id>/reveal",
        api.EnvironmentReveal.as_view(),
        name="api-environment-reveal",
    ),
    path("projects/<int:project_id>/database", api.DatabaseInfo.as_view(), name="api-database"),
    path("projects/<int:project_id>/database/reveal", api.DatabaseReveal.as_view(), name="api-database-reveal"),
    path("projects/<int:project_id>/database/recreate", api.DatabaseRecreate.as_view(), name="api-database-recreate"),
    path("projects/<int:project_id>/workspace/recreate", api.WorkspaceRecreate.as_view(), name="api-workspace-recreate"),
    path("user/config", identities_api.UserConfigView.as_view(), name="api-user-config"),
    path("user/config/reveal", identities_api.UserConfigReveal.as_view(), name="api-user-config-reveal"),
    path("user/config/anthropic", identities_api.AnthropicConfigView.as_view(), name="api-user-config-anthropic"),
    path("user/config/kc", identities_api.KubeconfigView.as_view(), name="api-user-config-kc"),
    path("user/config/system-prompt", identities_api.SystemPromptView.as_view(), name="api-user-config-system-prompt"),
    path("user/tokens", identities_api.ApiTokenListCreate.as_view(), name="api-user-tokens"),
    path("user/tokens/<int:token_id>", identities_api.ApiTokenRevoke.as_view(), name="api-user-token"),
]

