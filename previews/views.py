"""The platform's side of previews (its own origin, the user's session): open the preview (a
one-time hand-off to the preview origin), share links made and revoked from the page and the API."""

from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from fullstackagent.exceptions import ApiFailure, errors
from previews import grants
from previews.hosts import preview_origin
from previews.models import PreviewShare
from projects import selectors
from projects.serializers import MessageSerializer


def _next_path(request) -> str:
    value = request.GET.get("next", "/")
    return value if value.startswith("/") and not value.startswith(("//", "/\\")) else "/"


@login_required
@require_GET
def open_preview(request, project_id):
    """GET /projects/<id>/preview/: the owner's browser leaves with a single-use ticket for the
    preview origin, which sets the preview's own cookie (the platform's cookies never go there)."""
    project = selectors.owned_project(request.user, project_id)
    token = grants.create_handoff(request.user, project)
    response = redirect(
        f"{preview_origin(project.pk)}/__preview/handoff?token={token}&next={quote(_next_path(request), safe='/')}"
    )
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


@login_required
@require_POST
def create_share(request, project_id):
    project = selectors.owned_project(request.user, project_id)
    _, token = grants.create_share(project)
    # Shown once, like an API token: only its hash is kept.
    messages.success(request, f"Share link (shown once; anyone with it sees the preview until you revoke it): {grants.share_url(project, token)}")
    return redirect("project-terminal", project.pk)


@login_required
@require_POST
def revoke_share(request, project_id, share_id):
    project = selectors.owned_project(request.user, project_id)
    if grants.revoke_share(project, share_id):
        messages.success(request, "The share link was revoked; it no longer opens the preview.")
    return redirect("project-terminal", project.pk)


# --- API ---------------------------------------------------------------------------------------


class PreviewShareSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created = serializers.DateTimeField()
    active = serializers.BooleanField()


class PreviewShareCreatedSerializer(PreviewShareSerializer):
    url = serializers.CharField(help_text="The share link; shown once (only its hash is kept).")


class PreviewSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="The preview's origin; opening it needs the owner's hand-off or a share link.")
    openUrl = serializers.CharField(help_text="Open this on the platform (signed in) to reach the preview as its owner.")
    shares = PreviewShareSerializer(many=True)


def _share(share: PreviewShare) -> dict:
    return {"id": share.pk, "created": share.created, "active": share.active}


class PreviewDetail(APIView):
    name = "Preview"

    @extend_schema(operation_id="projects_preview_retrieve", responses={200: PreviewSerializer, **errors(404)})
    def get(self, request, project_id: int):
        project = selectors.owned_project(request.user, project_id)
        return Response(
            {
                "url": preview_origin(project.pk),
                "openUrl": request.build_absolute_uri(f"/projects/{project.pk}/preview/"),
                "shares": [_share(share) for share in PreviewShare.objects.filter(project=project, revoked_at__isnull=True)],
            }
        )


class PreviewShareCreate(APIView):
    name = "Preview shares"

    @extend_schema(
        operation_id="projects_preview_shares_create",
        request=None,
        responses={201: PreviewShareCreatedSerializer, **errors(404)},
        summary="Make a share link: whoever opens it sees the preview until it is revoked",
    )
    def post(self, request, project_id: int):
        project = selectors.owned_project(request.user, project_id)
        share, token = grants.create_share(project)
        return Response({**_share(share), "url": grants.share_url(project, token)}, status=status.HTTP_201_CREATED)


class PreviewShareRevoke(APIView):
    name = "Preview share"

    @extend_schema(
        operation_id="projects_preview_shares_revoke",
        responses={200: MessageSerializer, **errors(404)},
        summary="Revoke a share link: it stops opening the preview at once",
    )
    def delete(self, request, project_id: int, share_id: int):
        project = selectors.owned_project(request.user, project_id)
        if not grants.revoke_share(project, share_id):
            raise ApiFailure("No such active share link.", "NOT_FOUND", status.HTTP_404_NOT_FOUND)
        return Response({"message": "The share link was revoked."})
