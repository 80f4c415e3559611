"""The terminal page, its status endpoint and uploads. Views validate and answer; the work is in
sandboxes.terminal (the page wakes an idle-stopped project, which is the orchestrator's, so the
views live here). No response here carries the terminal token or the upstream address."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from databases.models import Database
from fullstackagent.status import ResourceStatus
from projects.services import START, ActionNotAllowed, allowed_actions, do_wake_project
from sandboxes import terminal
from sandboxes.models import Sandbox
from sandboxes.terminal import UploadRefused


def _owned_project_or_404(request, project_id):
    project = terminal.owned_project(request.user, project_id)
    if project is None:
        raise Http404("No such project.")
    return project


def _sandbox_state(project) -> dict:
    sandbox = terminal.project_sandbox(project)
    return {
        "project": project.status,
        "sandbox": sandbox.status if sandbox else None,
        # Why the sandbox is not running, in words the reconciler recorded for the user.
        "message": sandbox.last_error if sandbox else "",
        "app_url": sandbox.public_url if sandbox else "",
        "running": bool(sandbox and sandbox.status == ResourceStatus.RUNNING),
    }


@login_required
@require_GET
def terminal_page(request, project_id):
    project = _owned_project_or_404(request, project_id)
    # Opening a project the platform stopped for being idle starts it; the page shows the start's
    # progress and connects once RUNNING. A stop the user chose is kept (they may only be passing
    # through to the project's other pages): the overlay offers Start.
    overlay_detail = ""
    try:
        if do_wake_project(project):
            overlay_detail = "It was stopped while idle; starting it again. The terminal opens when it is RUNNING."
            project.refresh_from_db()
    except ActionNotAllowed as refusal:  # over the running-sandbox quota
        overlay_detail = str(refusal)
    return render(
        request,
        "sandboxes/terminal.html",
        {
            "project": project,
            "overlay_detail": overlay_detail,
            "state": _sandbox_state(project),
            # The overlay of a stopped project offers Start (the same rule as the project cards).
            "can_start": START in allowed_actions(project.status, _resource_statuses(project)),
            "max_upload_bytes": settings.TERMINAL_UPLOAD_MAX_BYTES,
            "chunk_bytes": terminal.UPLOAD_CHUNK_BYTES,
        },
    )


def _resource_statuses(project) -> list[str]:
    return list(
        Sandbox.objects.filter(project=project).values_list("status", flat=True).union(
            Database.objects.filter(project=project).values_list("status", flat=True), all=True
        )
    )


def _json_error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"message": message, **extra}, status=status)


@require_GET
def terminal_status(request, project_id):
    """Polled by the terminal page while the sandbox is not RUNNING (every 3 s, like the original)."""
    if not request.user.is_authenticated:
        return _json_error(401, "Sign in first.")
    return JsonResponse(_sandbox_state(_owned_project_or_404(request, project_id)))


@require_POST
def terminal_upload(request, project_id):
    """One chunk of a file dropped onto a terminal: ``POST ...?session=&upload=&name=&size=&offset=``
    with the chunk as the raw body (application/octet-stream, so nothing parses it as a form).

    CSRF-protected by the middleware (the page sends X-CSRFToken). Answers
    ``{"received": n, "complete": false}`` until the last chunk, then ``{"complete": true, "path": p}``;
    a chunk at the wrong offset gets 409 with ``{"offset": n}`` to resume from.
    """
    if not request.user.is_authenticated:
        return _json_error(401, "Sign in first.")
    try:
        progress = terminal.do_receive_upload_chunk(
            request.user,
            project_id,
            session_name=request.GET.get("session"),
            upload_id=request.GET.get("upload", ""),
            filename=request.GET.get("name", ""),
            total_size=request.GET.get("size", ""),
            offset=request.GET.get("offset", ""),
            chunk=request,
        )
    except UploadRefused as refusal:
        return _json_error(refusal.status, str(refusal), **refusal.extra)
    return JsonResponse({"received": progress.received, "complete": bool(progress.path), "path": progress.path})
