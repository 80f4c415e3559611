"""User settings and personal API tokens in the REST API.

Routes (identities/api.py is included from projects/api_urls.py, under /api/):
``GET/POST user/config``, ``user/config/anthropic``, ``user/config/kc`` (+ DELETE),
``user/config/system-prompt``, ``POST user/config/reveal``, ``GET/POST user/tokens``,
``DELETE user/tokens/{id}``. Secret settings (kubeconfig, Anthropic key) are masked in every
answer except the explicit reveal; a token's clear text appears once, in the answer that creates it.
"""

import datetime
import functools
import re

from django.db import connection
from django.template.loader import render_to_string
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from fullstackagent.encryption import mask
from fullstackagent.exceptions import ApiFailure, errors
from identities import tokens
from identities.models import ApiToken, ConfigKey, UserConfig
from identities.services import set_user_config

CONFIG_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_CONFIG_VALUE_BYTES = 32 * 1024
MAX_SYSTEM_PROMPT_BYTES = 32 * 1024



def default_system_prompt() -> str:
    """The template the settings page starts from (templates/settings/default_system_prompt.txt)."""
    return render_to_string("settings/default_system_prompt.txt").strip()


def check_kubeconfig(text: str) -> str:
    """Parses the kubeconfig and asks its cluster whether it works; returns the success message or
    raises ApiFailure naming the ``kubeconfig`` field. Imported lazily: it pulls in the
    Kubernetes client, which most requests never need."""
    from fullstackagent.kubernetes.kubeconfig import validate_kubeconfig

    ok, message = validate_kubeconfig(text)
    if not ok:
        raise ApiFailure(message, "KUBECONFIG_INVALID", fields={"kubeconfig": [message]})
    return message


def _shown(config: UserConfig) -> str:
    return mask(config.value) if config.is_secret else config.value


# --- serializers ---------------------------------------------------------------------------------


class ConfigSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.SerializerMethodField()
    category = serializers.CharField()
    isSecret = serializers.BooleanField(source="is_secret")
    updatedAt = serializers.DateTimeField(source="updated")

    def get_value(self, config) -> str:
        return config.value if self.context.get("reveal") else _shown(config)


class ConfigListSerializer(serializers.Serializer):
    """The declared field is the contract (the OpenAPI schema); the output is built directly, as
    ConfigSerializer gives each setting, because DRF's copying of the fields for every answer was a
    twentieth of the API's cheapest authenticated call (py-spy). tests/api/test_user_config_api.py
    holds both ways to the same output."""

    configs = ConfigSerializer(many=True)

    def to_representation(self, instance):
        return {
            "configs": [
                {
                    "key": config.key,
                    "value": _shown(config),
                    "category": config.category,
                    "isSecret": config.is_secret,
                    "updatedAt": config.updated.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z"),
                }
                for config in instance["configs"]
            ]
        }


class ConfigInputSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=128)
    value = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text="Empty removes the setting.")
    isSecret = serializers.BooleanField(required=False, help_text="Mask the value in answers (always for known secrets).")

    def validate_key(self, key):
        if not CONFIG_KEY_PATTERN.match(key):
            raise serializers.ValidationError(
                "A setting name has letters, digits and underscores and does not start with a digit.", code="invalid_key"
            )
        return key

    def validate(self, data):
        limit = 256 * 1024 if data["key"] == ConfigKey.KUBECONFIG else MAX_CONFIG_VALUE_BYTES
        if len(data["value"].encode()) > limit:
            raise serializers.ValidationError(
                {"value": serializers.ErrorDetail(f"A setting has at most {limit // 1024} KiB.", code="value_too_large")}
            )
        if "\x00" in data["value"]:
            raise serializers.ValidationError(
                {"value": serializers.ErrorDetail("A setting cannot contain a NUL character.", code="invalid_value")}
            )
        return data


class ConfigResultSerializer(serializers.Serializer):
    message = serializers.CharField()
    config = ConfigSerializer(allow_null=True)


class RevealInputSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=128)


class AnthropicSerializer(serializers.Serializer):
    baseUrl = serializers.CharField()
    apiKey = serializers.CharField(help_text="Masked.")
    apiKeySet = serializers.BooleanField()
    model = serializers.CharField()
    smallFastModel = serializers.CharField()


class AnthropicInputSerializer(serializers.Serializer):
    """Fields left out keep their value; an empty string removes one."""

    baseUrl = serializers.CharField(required=False, allow_blank=True, max_length=500)
    apiKey = serializers.CharField(required=False, allow_blank=True, max_length=4096, trim_whitespace=True)
    model = serializers.CharField(required=False, allow_blank=True, max_length=200)
    smallFastModel = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def validate_baseUrl(self, value):
        if value and not re.match(r"^https?://[^\s/?#]+[^\s]*$", value):
            raise serializers.ValidationError("Enter an http:// or https:// URL.", code="invalid_url")
        return value.rstrip("/")

    def validate_apiKey(self, value):
        if any(character.isspace() for character in value) or "\x00" in value:
            raise serializers.ValidationError("An API key has no spaces.", code="invalid_value")
        return value


class AnthropicResultSerializer(serializers.Serializer):
    message = serializers.CharField()
    anthropic = AnthropicSerializer()


class KubeconfigSerializer(serializers.Serializer):
    configured = serializers.BooleanField()
    kubeconfig = serializers.CharField(help_text="Masked.")
    server = serializers.CharField()
    namespace = serializers.CharField()


class KubeconfigInputSerializer(serializers.Serializer):
    kubeconfig = serializers.CharField(trim_whitespace=False, max_length=256 * 1024)
    validateOnly = serializers.BooleanField(default=False, help_text="Check against the cluster without saving.")


class KubeconfigResultSerializer(serializers.Serializer):
    message = serializers.CharField()
    valid = serializers.BooleanField()
    saved = serializers.BooleanField()


class SystemPromptSerializer(serializers.Serializer):
    systemPrompt = serializers.CharField()
    isDefault = serializers.BooleanField(help_text="True when nothing is saved: systemPrompt is the default template.")


class SystemPromptInputSerializer(serializers.Serializer):
    systemPrompt = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text="Empty goes back to the default.")

    def validate_systemPrompt(self, value):
        if len(value.encode()) > MAX_SYSTEM_PROMPT_BYTES:
            raise serializers.ValidationError("A system prompt has at most 32 KiB.", code="value_too_large")
        if "\x00" in value:
            raise serializers.ValidationError("A system prompt cannot contain a NUL character.", code="invalid_value")
        return value


class SystemPromptResultSerializer(serializers.Serializer):
    message = serializers.CharField()
    systemPrompt = SystemPromptSerializer()


class ApiTokenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The token's first characters, to tell tokens apart.")
    createdAt = serializers.DateTimeField(source="created")
    lastUsedAt = serializers.DateTimeField(source="last_used", allow_null=True)
    revokedAt = serializers.DateTimeField(source="revoked", allow_null=True)


class ApiTokenInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64, help_text="What the token is for, e.g. 'deploy script'.")


class ApiTokenCreatedSerializer(serializers.Serializer):
    message = serializers.CharField()
    token = ApiTokenSerializer()
    clearToken = serializers.CharField(help_text="Shown only in this answer; store it now.")


class SettingsMessageSerializer(serializers.Serializer):
    message = serializers.CharField()


# --- views ---------------------------------------------------------------------------------------


# The user's settings, by key: every settings page and the API's no-op read them. The ORM's own SQL
# for the queryset, compiled once (compiling it was a third of the call: 1.2 ms against 0.8 ms), run
# on a cursor, each row made a model instance as the ORM does (the fields' own conversions: the value
# is decrypted). raw() did the same with a tenth of the no-op's CPU spent matching columns to fields.
_NO_USER = -1


@functools.cache
def _user_configs_query() -> tuple[str, list[str], list]:
    """The SQL, the fields' names in its column order, and the fields that convert what they read."""
    fields = UserConfig._meta.concrete_fields
    queryset = UserConfig.objects.filter(user_id=_NO_USER).order_by("key").values_list(*(f.attname for f in fields))
    sql, params = queryset.query.sql_with_params()
    if params != (_NO_USER,):
        raise AssertionError(f"the settings query has parameters besides the user: {params!r}")
    converted = [(index, field) for index, field in enumerate(fields) if hasattr(field, "from_db_value")]
    return sql, [field.attname for field in fields], converted


def user_configs(user) -> list[UserConfig]:
    sql, names, converted = _user_configs_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, [user.pk])
        rows = cursor.fetchall()
    configs = []
    for row in rows:
        values = list(row)
        for index, field in converted:
            values[index] = field.from_db_value(values[index], None, connection)
        configs.append(UserConfig.from_db(connection.alias, names, values))
    return configs


def _configs(user) -> dict[str, UserConfig]:
    return {config.key: config for config in user_configs(user)}


class UserConfigView(APIView):
    name = "User settings"  # the browsable API's title
    @extend_schema(operation_id="user_config_list", responses={200: ConfigListSerializer, **errors()})
    def get(self, request):
        return Response(ConfigListSerializer({"configs": user_configs(request.user)}).data)

    @extend_schema(
        operation_id="user_config_save",
        request=ConfigInputSerializer,
        responses={200: ConfigResultSerializer, **errors(400)},
        summary="Save one setting (a kubeconfig is checked against its cluster first)",
    )
    def post(self, request):
        serializer = ConfigInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key, value = serializer.validated_data["key"], serializer.validated_data["value"]
        if key == ConfigKey.KUBECONFIG and value:
            check_kubeconfig(value)
        is_secret = True if key in ConfigKey.SECRET else serializer.validated_data.get("isSecret", False)
        config = set_user_config(request.user, key, value, is_secret=is_secret)
        message = f"Saved {key}." if config else f"Removed {key}."
        return Response(ConfigResultSerializer({"message": message, "config": config}).data)


class UserConfigReveal(APIView):
    name = "Reveal setting"
    @extend_schema(
        operation_id="user_config_reveal",
        request=RevealInputSerializer,
        responses={200: ConfigSerializer, **errors(400, 404)},
        summary="One of the user's settings with its value in clear",
    )
    def post(self, request):
        serializer = RevealInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        config = UserConfig.objects.filter(user=request.user, key=serializer.validated_data["key"]).first()
        if config is None:
            raise ApiFailure("You have no setting with this name.", "NOT_FOUND", status.HTTP_404_NOT_FOUND)
        return Response(ConfigSerializer(config, context={"reveal": True}).data)


ANTHROPIC_FIELDS = {
    "baseUrl": ConfigKey.ANTHROPIC_BASE_URL,
    "apiKey": ConfigKey.ANTHROPIC_API_KEY,
    "model": ConfigKey.ANTHROPIC_MODEL,
    "smallFastModel": ConfigKey.ANTHROPIC_SMALL_FAST_MODEL,
}


def anthropic_settings(user) -> dict:
    configs = _configs(user)

    def value(key):
        return configs[key].value if key in configs else ""

    api_key = value(ConfigKey.ANTHROPIC_API_KEY)
    return {
        "baseUrl": value(ConfigKey.ANTHROPIC_BASE_URL),
        "apiKey": mask(api_key),
        "apiKeySet": bool(api_key),
        "model": value(ConfigKey.ANTHROPIC_MODEL),
        "smallFastModel": value(ConfigKey.ANTHROPIC_SMALL_FAST_MODEL),
    }


class AnthropicConfigView(APIView):
    name = "Anthropic settings"
    @extend_schema(operation_id="user_config_anthropic_retrieve", responses={200: AnthropicSerializer, **errors()})
    def get(self, request):
        return Response(AnthropicSerializer(anthropic_settings(request.user)).data)

    @extend_schema(
        operation_id="user_config_anthropic_save",
        request=AnthropicInputSerializer,
        responses={200: AnthropicResultSerializer, **errors(400)},
    )
    def post(self, request):
        serializer = AnthropicInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        saved = []
        for field, value in serializer.validated_data.items():
            set_user_config(request.user, ANTHROPIC_FIELDS[field], value)
            saved.append(ANTHROPIC_FIELDS[field])
        message = f"Saved {', '.join(saved)}; running sandboxes pick it up within a few seconds." if saved else "Nothing to save."
        return Response(AnthropicResultSerializer({"message": message, "anthropic": anthropic_settings(request.user)}).data)


def kubeconfig_summary(user) -> dict:
    config = UserConfig.objects.filter(user=user, key=ConfigKey.KUBECONFIG).first()
    if config is None:
        return {"configured": False, "kubeconfig": "", "server": "", "namespace": ""}
    from fullstackagent.kubernetes.kubeconfig import KubeconfigError, parse_kubeconfig

    try:
        parsed = parse_kubeconfig(config.value)
        server, namespace = parsed.server, parsed.namespace
    except KubeconfigError:
        server = namespace = ""
    return {"configured": True, "kubeconfig": mask(config.value), "server": server, "namespace": namespace}


class KubeconfigView(APIView):
    name = "Kubeconfig"
    @extend_schema(operation_id="user_config_kc_retrieve", responses={200: KubeconfigSerializer, **errors()})
    def get(self, request):
        return Response(KubeconfigSerializer(kubeconfig_summary(request.user)).data)

    @extend_schema(
        operation_id="user_config_kc_save",
        request=KubeconfigInputSerializer,
        responses={200: KubeconfigResultSerializer, **errors(400)},
        summary="Check a kubeconfig against its cluster, and save it unless validateOnly",
    )
    def post(self, request):
        serializer = KubeconfigInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        text = serializer.validated_data["kubeconfig"]
        message = check_kubeconfig(text)
        if serializer.validated_data["validateOnly"]:
            return Response({"message": message, "valid": True, "saved": False})
        set_user_config(request.user, ConfigKey.KUBECONFIG, text)
        return Response({"message": f"{message} Saved.", "valid": True, "saved": True})

    @extend_schema(operation_id="user_config_kc_destroy", responses={200: SettingsMessageSerializer, **errors()})
    def delete(self, request):
        set_user_config(request.user, ConfigKey.KUBECONFIG, "")
        return Response({"message": "Kubeconfig removed."})


def system_prompt_settings(user) -> dict:
    config = UserConfig.objects.filter(user=user, key=ConfigKey.SYSTEM_PROMPT).first()
    if config is None:
        return {"systemPrompt": default_system_prompt(), "isDefault": True}
    return {"systemPrompt": config.value, "isDefault": False}


class SystemPromptView(APIView):
    name = "System prompt"
    @extend_schema(operation_id="user_config_system_prompt_retrieve", responses={200: SystemPromptSerializer, **errors()})
    def get(self, request):
        return Response(SystemPromptSerializer(system_prompt_settings(request.user)).data)

    @extend_schema(
        operation_id="user_config_system_prompt_save",
        request=SystemPromptInputSerializer,
        responses={200: SystemPromptResultSerializer, **errors(400)},
    )
    def post(self, request):
        serializer = SystemPromptInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        set_user_config(request.user, ConfigKey.SYSTEM_PROMPT, serializer.validated_data["systemPrompt"])
        message = (
            "System prompt saved; the agent gets it the next time it starts."
            if serializer.validated_data["systemPrompt"]
            else "System prompt reset to the default template."
        )
        return Response({"message": message, "systemPrompt": system_prompt_settings(request.user)})


class ApiTokenListCreate(APIView):
    name = "API tokens"
    @extend_schema(operation_id="user_tokens_list", responses={200: ApiTokenSerializer(many=True), **errors()})
    def get(self, request):
        return Response(ApiTokenSerializer(ApiToken.objects.filter(user=request.user), many=True).data)

    @extend_schema(
        operation_id="user_tokens_create",
        request=ApiTokenInputSerializer,
        responses={201: ApiTokenCreatedSerializer, **errors(400)},
    )
    def post(self, request):
        serializer = ApiTokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            token, clear_token = tokens.do_create_api_token(request.user, name=serializer.validated_data["name"])
        except tokens.TokenLimitReached as error:
            raise ApiFailure(str(error), error.code) from None
        body = {
            "message": f"Token {token.name} created. Copy it now: it is not shown again.",
            "token": token,
            "clearToken": clear_token,
        }
        return Response(ApiTokenCreatedSerializer(body).data, status=status.HTTP_201_CREATED)


class ApiTokenRevoke(APIView):
    name = "API token"
    @extend_schema(operation_id="user_tokens_revoke", responses={200: SettingsMessageSerializer, **errors(404)})
    def delete(self, request, token_id: int):
        try:
            token = tokens.do_revoke_api_token(request.user, token_id)
        except ApiToken.DoesNotExist:
            raise ApiFailure("Token not found.", "NOT_FOUND", status.HTTP_404_NOT_FOUND) from None
        return Response({"message": f"Token {token.name} revoked; requests using it now get 401."})
