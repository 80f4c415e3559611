"""Project endpoints of the REST API (paths from the original system, see projects/api_urls.py).

Views validate and translate; projects.services makes the changes and projects.selectors reads.
Another user's project, variable or database answers 404 exactly like a missing one.
"""

from django.db import IntegrityError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from fullstackagent.exceptions import ApiFailure, errors
from projects import selectors, services
from projects.serializers import (
    DatabaseConnectionSerializer,
    MessageSerializer,
    ProjectActionResultSerializer,
    ProjectCreateSerializer,
    ProjectListQuerySerializer,
    ProjectSerializer,
    ResourceEventSerializer,
    VariableListResultSerializer,
    VariableResultSerializer,
    WRITABLE_CATEGORIES,
    VariablesByCategorySerializer,
    VariablesCreateSerializer,
    VariableSerializer,
    VariableUpdateSerializer,
)



IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_LENGTH = 255  # the column's length (projects.models.IdempotencyKey.key)

# Every category but the terminal token's, which is never listed.
_SHOWN_CATEGORIES = [str(category) for category in WRITABLE_CATEGORIES]


class ProjectListCreate(APIView):
    name = "Projects"  # the browsable API's title
    @extend_schema(
        operation_id="projects_list",
        parameters=[ProjectListQuerySerializer],
        responses={200: ProjectSerializer(many=True), **errors(400)},
        summary="The user's projects, newest first",
    )
    def get(self, request):
        query = ProjectListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        projects = selectors.project_list(request.user, **query.validated_data)
        return Response(ProjectSerializer(projects, many=True).data)

    @extend_schema(
        operation_id="projects_create",
        request=ProjectCreateSerializer,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="A unique value per intended create (a UUID), as payment APIs take it. A create "
                "retried with the same key (after a timeout, a lost answer or a 5xx) makes no second project: "
                "it answers 201 with the project the first one made, and the header `Idempotent-Replayed: true`. "
                "Reusing a key for a create with another name answers 400 `IDEMPOTENCY_KEY_REUSED`. "
                f"At most {MAX_IDEMPOTENCY_KEY_LENGTH} characters.",
            )
        ],
        responses={201: ProjectSerializer, **errors(400, 409)},
        summary="Create a project (its sandbox and database are created in the background)",
        description="400 `KUBECONFIG_MISSING` when the Kubernetes backend is used and the user has no kubeconfig; "
        "409 `QUOTA_EXCEEDED` over the user's project or running-sandbox limit (the message says which).",
    )
    def post(self, request):
        serializer = ProjectCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            raise ApiFailure(f"{IDEMPOTENCY_HEADER} has at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters.", "INVALID_IDEMPOTENCY_KEY")
        try:
            try:
                project = services.do_create_project(request.user, **serializer.validated_data, idempotency_key=key)
            except IntegrityError:
                if not key:
                    raise
                # A concurrent create with the same key committed first: this one is its replay.
                project = services.do_create_project(request.user, **serializer.validated_data, idempotency_key=key)
        except services.KubeconfigMissing as error:
            raise ApiFailure(str(error), error.code) from None
        except services.QuotaExceeded as error:
            raise ApiFailure(str(error), error.code, status.HTTP_409_CONFLICT) from None
        except services.IdempotencyKeyReused as error:
            raise ApiFailure(str(error), error.code) from None
        if project.replayed:
            response = Response(ProjectSerializer(selectors.with_resources(project)).data, status=status.HTTP_201_CREATED)
            response["Idempotent-Replayed"] = "true"
            return response
        project = selectors.just_created(project)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


def _action_result(message: str, project) -> Response:
    return Response(ProjectActionResultSerializer({"message": message, "project": project}).data)


def _run_action(request, project_id, service, message: str) -> Response:
    project = selectors.owned_project(request.user, project_id)
    try:
        project = service(project)
    except services.QuotaExceeded as error:
        raise ApiFailure(str(error), error.code, status.HTTP_409_CONFLICT) from None
    except services.ActionNotAllowed as error:
        raise ApiFailure(str(error), error.code) from None
    return _action_result(message.format(name=project.name), project)


class ProjectDetail(APIView):
    name = "Project"
    @extend_schema(operation_id="projects_retrieve", responses={200: ProjectSerializer, **errors(404)})
    def get(self, request, project_id: int):
        return Response(ProjectSerializer(selectors.owned_project(request.user, project_id)).data)

    @extend_schema(
        operation_id="projects_destroy",
        responses={200: ProjectActionResultSerializer, **errors(400, 404)},
        summary="Delete a project (same as POST .../delete)",
    )
    def delete(self, request, project_id: int):
        return _run_action(request, project_id, services.do_delete_project, DELETE_MESSAGE)


class ProjectEvents(APIView):
    name = "Project events"

    @extend_schema(
        operation_id="projects_events",
        responses={200: ResourceEventSerializer(many=True), **errors(404)},
        summary="The status transitions of the project's sandbox and database, newest first (deleted projects too)",
        description=f"At most {selectors.EVENTS_SHOWN} events: each says from which status to which, why, "
        "and what caused it (user, reconcile, drift, deadline). The answer to \"why is my project in ERROR\".",
    )
    def get(self, request, project_id: int):
        project = selectors.owned_project_history(request.user, project_id)
        return Response(ResourceEventSerializer(selectors.project_events(project), many=True).data)


START_MESSAGE = "Project {name} is starting."
STOP_MESSAGE = "Project {name} is stopping."
DELETE_MESSAGE = "Project {name} is being deleted."
RESTART_MESSAGE = "The sandbox of {name} is restarting: its processes end and start again with the current environment."


class ProjectAction(APIView):
    """POST /api/projects/{id}/start|stop|restart|delete → {message, project: {id, status, updatedAt}}."""
    name = "Project action"

    service = None
    message = ""

    @extend_schema(request=None, responses={200: ProjectActionResultSerializer, **errors(400, 404, 409)})
    def post(self, request, project_id: int):
        return _run_action(request, project_id, type(self).service, self.message)


@extend_schema_view(post=extend_schema(operation_id="projects_start"))
class ProjectStart(ProjectAction):
    name = "Start project"
    service = services.do_start_project
    message = START_MESSAGE


@extend_schema_view(post=extend_schema(operation_id="projects_stop"))
class ProjectStop(ProjectAction):
    name = "Stop project"
    service = services.do_stop_project
    message = STOP_MESSAGE


@extend_schema_view(post=extend_schema(
    operation_id="projects_restart",
    description="Restarts a RUNNING project's sandbox: every process in it (terminals, the agent, the app) "
    "ends and starts again with the current environment; files in the workspace and the database are kept. "
    "Environment changes reach new shells without it.",
))
class ProjectRestart(ProjectAction):
    name = "Restart project sandbox"
    service = services.do_restart_project
    message = RESTART_MESSAGE


@extend_schema_view(post=extend_schema(
    operation_id="projects_database_recreate",
    description="Re-creates a project's database that is in ERROR, for instance because it was found gone: "
    "the new database is EMPTY. The platform never does this by itself.",
))
class DatabaseRecreate(ProjectAction):
    name = "Re-create project database"
    service = services.do_recreate_database
    message = "A new, empty database is being created for {name}."


@extend_schema_view(post=extend_schema(
    operation_id="projects_workspace_recreate",
    description="Starts a project's sandbox that is in ERROR, for instance because its workspace was found gone, "
    "with an EMPTY workspace (the starter template). The platform never does this by itself.",
))
class WorkspaceRecreate(ProjectAction):
    name = "Re-create project workspace"
    service = services.do_recreate_workspace
    message = "The sandbox of {name} is starting with a new, empty workspace."


@extend_schema_view(post=extend_schema(operation_id="projects_delete"))
class ProjectDelete(ProjectAction):
    name = "Delete project"
    service = services.do_delete_project
    message = DELETE_MESSAGE


# --- environment variables -----------------------------------------------------------------------


def _save_variables(project, items) -> list:
    return services.do_set_variables(
        project,
        [
            {"key": item["key"], "value": item["value"], "category": item["category"], "is_secret": item["isSecret"]}
            for item in items
        ],
    )


class EnvironmentListCreate(APIView):
    name = "Environment"
    @extend_schema(
        operation_id="environment_list",
        responses={200: VariablesByCategorySerializer, **errors(404)},
        summary="The project's variables grouped by category (secret values masked)",
    )
    def get(self, request, project_id: int):
        project = selectors.owned_project(request.user, project_id)
        grouped = {category: [] for category in _SHOWN_CATEGORIES}
        for variable in selectors.variables(project):
            grouped[variable.category].append(variable)
        return Response(VariablesByCategorySerializer(grouped).data)

    @extend_schema(
        operation_id="environment_create",
        request=VariablesCreateSerializer,
        responses={201: VariableListResultSerializer, **errors(400, 404)},
        summary="Create or update one variable, or several with 'variables'; other keys are left alone",
    )
    def post(self, request, project_id: int):
        project = selectors.owned_project(request.user, project_id)
        serializer = VariablesCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rows = _save_variables(project, serializer.validated_data["variables"])
        keys = ", ".join(row.key for row in rows)
        message = f"Saved {keys}; a running sandbox picks it up within a few seconds."
        return Response(
            VariableListResultSerializer({"message": message, "variables": rows}).data, status=status.HTTP_201_CREATED
        )


class EnvironmentDetail(APIView):
    name = "Variable"
    @extend_schema(
        operation_id="environment_update",
        request=VariableUpdateSerializer,
        responses={200: VariableResultSerializer, **errors(400, 404)},
    )
    def put(self, request, project_id: int, variable_id: int):
        project = selectors.owned_project(request.user, project_id)
        variable = selectors.owned_variable(project, variable_id)
        serializer = VariableUpdateSerializer(data=request.data, context={"variable": variable})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        variable = services.do_update_variable(
            project,
            variable,
            value=data["value"],
            key=data.get("key"),
            category=data.get("category"),
            is_secret=data.get("isSecret"),
        )
        return Response(VariableResultSerializer({"message": f"Saved {variable.key}.", "variable": variable}).data)

    @extend_schema(operation_id="environment_destroy", responses={200: MessageSerializer, **errors(404)})
    def delete(self, request, project_id: int, variable_id: int):
        project = selectors.owned_project(request.user, project_id)
        variable = selectors.owned_variable(project, variable_id)
        services.do_delete_variable(project, variable.key)
        return Response({"message": f"Deleted {variable.key}."})


class EnvironmentReveal(APIView):
    name = "Reveal variable"
    @extend_schema(
        operation_id="environment_reveal",
        request=None,
        responses={200: VariableSerializer, **errors(404)},
        summary="A variable with its value in clear, for its owner",
    )
    def post(self, request, project_id: int, variable_id: int):
        project = selectors.owned_project(request.user, project_id)
        variable = selectors.owned_variable(project, variable_id)
        return Response(VariableSerializer(variable, context={"reveal": True}).data)


# --- database ------------------------------------------------------------------------------------


class DatabaseInfo(APIView):
    name = "Database"
    @extend_schema(
        operation_id="database_retrieve",
        responses={200: DatabaseConnectionSerializer, **errors(404)},
        summary="The project's database connection, password masked",
    )
    def get(self, request, project_id: int):
        project = selectors.owned_project(request.user, project_id)
        return Response(DatabaseConnectionSerializer(selectors.database_connection(project).masked()).data)


class DatabaseReveal(APIView):
    name = "Reveal database password"
    @extend_schema(
        operation_id="database_reveal",
        request=None,
        responses={200: DatabaseConnectionSerializer, **errors(404)},
        summary="The project's database connection with the password, for its owner",
    )
    def post(self, request, project_id: int):
        project = selectors.owned_project(request.user, project_id)
        return Response(DatabaseConnectionSerializer(selectors.database_connection(project)).data)


class ApiRoot(APIView):
    """GET /api/: where the API's resources are (the browsable API's front page)."""

    name = "FullstackAgent API"
    permission_classes = []  # a map of the API, nothing of any user's

    @extend_schema(exclude=True)
    def get(self, request):
        return Response(
            {
                "projects": reverse("api-projects", request=request),
                "userConfig": reverse("api-user-config", request=request),
                "apiTokens": reverse("api-user-tokens", request=request),
                "schema": reverse("api-schema", request=request),
                "docs": reverse("api-docs", request=request),
                "site": request.build_absolute_uri("/"),
            }
        )
