"""Pages for sign-in methods: the linked identities of the signed-in user, and Sealos sign-in."""

import json
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from identities import services
from identities.middleware import allow_sealos_framing
from identities.models import IdentityProvider, UserIdentity
from identities.sealos import SealosSignInRefused

logger = logging.getLogger(__name__)


def describe_identity(identity: UserIdentity) -> str:
    """How the page names an identity: the account name at the provider, never a token."""
    metadata = identity.metadata or {}
    if identity.provider == IdentityProvider.GITHUB:
        login_name = metadata.get("login")
        return f"@{login_name}" if login_name else f"GitHub user {identity.provider_user_id}"
    if identity.provider == IdentityProvider.SEALOS:
        return metadata.get("userCrName") or identity.provider_user_id
    return metadata.get("username") or identity.user.username


@login_required
@require_GET
def sign_in_methods(request):
    identities = list(UserIdentity.objects.filter(user=request.user).select_related("user").order_by("created", "pk"))
    rows = [{"identity": identity, "label": describe_identity(identity)} for identity in identities]
    has_github = any(identity.provider == IdentityProvider.GITHUB for identity in identities)
    return render(
        request,
        "identities/sign_in_methods.html",
        {"rows": rows, "can_unlink": len(identities) > 1, "can_link_github": settings.ENABLE_GITHUB_AUTH and not has_github},
    )


@login_required
@require_POST
def unlink_identity(request, identity_id: int):
    try:
        services.do_unlink_identity(request.user, identity_id)
    except UserIdentity.DoesNotExist:
        raise Http404("No such sign-in method") from None
    except services.IdentityError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Sign-in method removed.")
    return redirect("identities:sign-in-methods")


@login_required
@require_POST
def make_primary(request, identity_id: int):
    try:
        services.do_set_primary(request.user, identity_id)
    except UserIdentity.DoesNotExist:
        raise Http404("No such sign-in method") from None
    messages.success(request, "Primary sign-in method changed.")
    return redirect("identities:sign-in-methods")


@require_GET
def sealos_page(request):
    """Opened inside the Sealos desktop: its script asks the desktop for the session and posts it.

    Only the Sealos desktop may frame it: a page framing it could answer the session request with
    its own Sealos account and sign the visitor in as that account. The script also ignores
    answers from any other origin.
    """
    if not settings.ENABLE_SEALOS_AUTH:
        raise Http404("Sealos sign-in is not enabled")
    origins = settings.SEALOS_DESKTOP_ORIGINS
    response = render(request, "identities/sealos.html", {"desktop_origins": origins})
    if origins:
        allow_sealos_framing(response, origins)  # CSP frame-ancestors names who may frame it instead
    return response


def _origin_is_ours(request) -> bool:
    """A browser sends Origin on every POST from a script; it must be this site (or a trusted one)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser script (curl, tests); the token alone decides
    own = f"{request.scheme}://{request.get_host()}"
    return origin == own or origin in settings.CSRF_TRUSTED_ORIGINS


# CSRF, and why this endpoint is exempt from Django's check: the page posts from an iframe inside
# the Sealos desktop, where SameSite cookies (the CSRF cookie included) are not sent, so the check
# would always fail. The endpoint needs no protection against classic CSRF because it acts on no
# ambient credential: the posted Sealos JWT is the credential, and it only signs in as the JWT's
# own user. The remaining risk, "login CSRF" (another site making the victim's browser sign in as
# the attacker), is closed by accepting only `application/json`: a cross-site page can only send
# that through a CORS preflight, which this site never grants; the Origin check is a second lock.
@csrf_exempt
@require_POST
def sealos_sign_in(request):
    if not settings.ENABLE_SEALOS_AUTH:
        raise Http404("Sealos sign-in is not enabled")
    if request.content_type != "application/json":
        return _refusal("JSON_REQUIRED", "Send the Sealos session as application/json.", 415)
    if not _origin_is_ours(request):
        return _refusal("ORIGIN_REFUSED", "Sealos sign-in is only accepted from this site's own page.", 403)
    try:
        payload = json.loads(request.body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
        return _refusal("JSON_INVALID", "The request body is not JSON.", 400)
    if not isinstance(payload, dict):
        return _refusal("JSON_INVALID", "The request body must be a JSON object.", 400)
    try:
        user, created = services.do_sign_in_with_sealos(payload.get("token"), payload.get("kubeconfig"))
    except SealosSignInRefused as refusal:
        logger.info("sealos sign-in refused: %s", refusal.code)
        return _refusal(refusal.code, refusal.message, refusal.status)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse({"redirect": settings.LOGIN_REDIRECT_URL, "created": created, "username": user.username})


def _refusal(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"code": code, "error": message}, status=status)
