"""The settings page: system prompt, kubeconfig (validate and save), Anthropic settings, API tokens.

Input is validated with the API's serializers (identities.api), so the page and the API accept
and refuse the same things. Secrets (kubeconfig, API key) are never put back into the page; a
new token's clear text is rendered once, in the answer to the POST that created it (no redirect,
so it never lands in the session or the message store).
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from fullstackagent.exceptions import ApiFailure
from identities import api, tokens
from identities.models import ApiToken, ConfigKey
from identities.models import UserQuota
from identities.services import MAX_IDLE_STOP_MINUTES, set_idle_stop_minutes, set_user_config

TABS = [
    ("agent", "Agent"),
    ("kubernetes", "Kubernetes"),
    ("anthropic", "Anthropic"),
    ("tokens", "API tokens"),
]


def _page(request, tab: str, status: int = 200, **extra):
    tab = tab if tab in dict(TABS) else "agent"
    context = {
        "tabs": TABS,
        "tab": tab,
        "system_prompt": api.system_prompt_settings(request.user),
        "kubeconfig": api.kubeconfig_summary(request.user),
        "anthropic": api.anthropic_settings(request.user),
        "api_tokens": ApiToken.objects.filter(user=request.user),
        "idle_stop": _idle_stop_settings(request.user),
        "reason": request.GET.get("reason", ""),
        **extra,
    }
    return render(request, "settings/settings.html", context, status=status)


def _idle_stop_settings(user) -> dict:
    own = UserQuota.objects.filter(user=user).values_list("idle_stop_minutes", flat=True).first()
    default = settings.IDLE_STOP_MINUTES
    return {
        "minutes": own,  # None: the platform's default
        "default": int(default) if float(default).is_integer() else default,
        "max": MAX_IDLE_STOP_MINUTES,
    }


def _tab_url(tab: str) -> str:
    return f"{reverse('settings')}?tab={tab}"


@login_required
@require_GET
def settings_page(request):
    return _page(request, request.GET.get("tab", "agent"))


@login_required
@require_POST
def save_system_prompt(request):
    text = "" if request.POST.get("action") == "reset" else request.POST.get("system_prompt", "")
    serializer = api.SystemPromptInputSerializer(data={"systemPrompt": text.replace("\r\n", "\n")})
    if not serializer.is_valid():
        return _page(
            request, "agent", 400, prompt_error=serializer.errors["systemPrompt"][0], posted_prompt=text
        )
    set_user_config(request.user, ConfigKey.SYSTEM_PROMPT, serializer.validated_data["systemPrompt"])
    messages.success(
        request,
        "System prompt saved; the agent gets it the next time it starts in a sandbox."
        if text
        else "System prompt reset to the default template.",
    )
    return redirect(_tab_url("agent"))


@login_required
@require_POST
def save_idle_stop(request):
    """The user's idle stop in whole minutes; empty (or "Use the default") goes back to the platform's."""
    raw = "" if request.POST.get("action") == "reset" else request.POST.get("idle_stop_minutes", "").strip()
    try:
        minutes = None if raw == "" else int(raw)
        set_idle_stop_minutes(request.user, minutes)
    except ValueError:
        error = f"Enter whole minutes from 0 (never) to {MAX_IDLE_STOP_MINUTES}, or leave it empty for the default."
        return _page(request, "agent", 400, idle_stop_error=error, posted_idle_stop=raw)
    if minutes is None:
        messages.success(request, "Idle sandboxes stop after the platform's default time.")
    elif minutes == 0:
        messages.success(request, "Your sandboxes are never stopped for being idle.")
    else:
        messages.success(request, f"Your sandboxes stop after {minutes} minutes with nobody and nothing using them.")
    return redirect(_tab_url("agent"))


@login_required
@require_POST
def save_kubeconfig(request):
    action = request.POST.get("action", "save")
    if action == "remove":
        set_user_config(request.user, ConfigKey.KUBECONFIG, "")
        messages.success(request, "Kubeconfig removed. New projects need one again on Kubernetes.")
        return redirect(_tab_url("kubernetes"))
    text = request.POST.get("kubeconfig", "").replace("\r\n", "\n")
    try:
        verdict = api.check_kubeconfig(text)
    except ApiFailure as failure:
        return _page(request, "kubernetes", 400, kubeconfig_error=str(failure.detail), posted_kubeconfig=text)
    if action == "validate":
        return _page(request, "kubernetes", kubeconfig_ok=f"{verdict} Not saved yet.", posted_kubeconfig=text)
    set_user_config(request.user, ConfigKey.KUBECONFIG, text)
    messages.success(request, f"{verdict} Kubeconfig saved.")
    return redirect(_tab_url("kubernetes"))


@login_required
@require_POST
def save_anthropic(request):
    data = {
        "baseUrl": request.POST.get("base_url", "").strip(),
        "model": request.POST.get("model", "").strip(),
        "smallFastModel": request.POST.get("small_fast_model", "").strip(),
    }
    if request.POST.get("action") == "remove_api_key":
        data = {"apiKey": ""}
    elif request.POST.get("api_key", "").strip():
        # An empty key field means "keep the saved key": the page never shows it.
        data["apiKey"] = request.POST["api_key"].strip()
    serializer = api.AnthropicInputSerializer(data=data)
    if not serializer.is_valid():
        errors = {field: str(messages_[0]) for field, messages_ in serializer.errors.items()}
        return _page(request, "anthropic", 400, anthropic_errors=errors, posted_anthropic=data)
    for field, value in serializer.validated_data.items():
        set_user_config(request.user, api.ANTHROPIC_FIELDS[field], value)
    if request.POST.get("action") == "remove_api_key":
        messages.success(request, "Anthropic API key removed.")
    else:
        messages.success(request, "Anthropic settings saved; running sandboxes pick them up within a few seconds.")
    return redirect(_tab_url("anthropic"))


@login_required
@require_POST
def create_api_token(request):
    serializer = api.ApiTokenInputSerializer(data={"name": request.POST.get("name", "")})
    if not serializer.is_valid():
        return _page(request, "tokens", 400, token_error=str(serializer.errors["name"][0]))
    try:
        token, clear_token = tokens.do_create_api_token(request.user, name=serializer.validated_data["name"])
    except tokens.TokenLimitReached as error:
        return _page(request, "tokens", 400, token_error=str(error))
    return _page(request, "tokens", new_token=token, clear_token=clear_token)


@login_required
@require_POST
def revoke_api_token(request, token_id):
    try:
        token = tokens.do_revoke_api_token(request.user, token_id)
    except ApiToken.DoesNotExist:
        raise Http404("No such token.") from None
    messages.success(request, f"Token {token.name} revoked; requests using it now get 401.")
    return redirect(_tab_url("tokens"))
