"""Project endpoints of the REST API (paths from the original system)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from projects import services
from projects.models import Project
from projects.serializers import ProjectCreateSerializer, ProjectSerializer


def owned_project(request, project_id) -> Project:
    """Another user's project is answered exactly like a missing one: 404."""
    return get_object_or_404(Project.objects.visible(), pk=project_id, user=request.user)


class ProjectListCreate(APIView):
    def get(self, request):
        projects = Project.objects.visible().owned_by(request.user)
        return Response(ProjectSerializer(projects, many=True).data)

    def post(self, request):
        serializer = ProjectCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            project = services.do_create_project(request.user, **serializer.validated_data)
        except DjangoValidationError as error:
            return Response({"name": error.messages, "code": error.code}, status=status.HTTP_400_BAD_REQUEST)
        except services.KubeconfigMissing as error:
            return Response({"message": str(error), "code": error.code}, status=status.HTTP_400_BAD_REQUEST)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetail(APIView):
    def get(self, request, project_id):
        return Response(ProjectSerializer(owned_project(request, project_id)).data)


class ProjectAction(APIView):
    action_name = ""
    service = None
    message = ""

    def post(self, request, project_id):
        project = owned_project(request, project_id)
        try:
            project = type(self).service(project)
        except services.ActionNotAllowed as error:
            return Response({"message": str(error), "code": error.code}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {
                "message": self.message,
                "project": {"id": project.pk, "status": project.status, "updatedAt": project.updated},
            }
        )


class ProjectStart(ProjectAction):
    service = services.do_start_project
    message = "Project is starting."


class ProjectStop(ProjectAction):
    service = services.do_stop_project
    message = "Project is stopping."


class ProjectDelete(ProjectAction):
    service = services.do_delete_project
    message = "Project is being deleted."
