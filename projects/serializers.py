"""Shapes of the project API. Field names follow the original system's JSON (camelCase).

Nothing here can carry the terminal token: the sandbox's ttyd_url, the TTYD_ACCESS_TOKEN variable
and the database's connection URL are not fields of any output serializer, and secret variable
values go through ``mask`` unless a view explicitly reveals them to their owner.
"""

import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from fullstackagent.encryption import mask
from fullstackagent.status import TransitionCause
from projects import services
from projects.models import EnvironmentCategory, ResourceKind
from projects.naming import MAX_PROJECT_NAME_LENGTH, validate_project_name
from projects.selectors import related_or_none

# Categories a user may write; `ttyd` belongs to the platform.
WRITABLE_CATEGORIES = [
    EnvironmentCategory.GENERAL,
    EnvironmentCategory.SECRET,
    EnvironmentCategory.AUTH,
    EnvironmentCategory.PAYMENT,
]
MAX_VARIABLES_PER_REQUEST = 100


@extend_schema_field(OpenApiTypes.DATETIME)
class Timestamp(serializers.Field):
    """A stored (UTC) datetime as ISO 8601. DRF's DateTimeField converts every value to the current
    time zone first, which was a tenth of the project list's time; our columns are already UTC."""

    def __init__(self, **kwargs):
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value):
        return value.isoformat().replace("+00:00", "Z")


class SandboxSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    lastError = serializers.CharField(source="last_error")
    publicUrl = serializers.CharField(source="public_url")
    updatedAt = Timestamp(source="updated")


class DatabaseSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    lastError = serializers.CharField(source="last_error")
    updatedAt = Timestamp(source="updated")


def _timestamp(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _resource_json(resource, *, with_url: bool) -> dict | None:
    """A sandbox (``with_url``: its public URL too) or a database, as SandboxSummarySerializer and
    DatabaseSummarySerializer declare them."""
    if resource is None:
        return None
    shown = {"id": resource.id, "name": resource.name, "status": resource.status, "lastError": resource.last_error}
    if with_url:
        shown["publicUrl"] = resource.public_url
    shown["updatedAt"] = _timestamp(resource.updated)
    return shown


class ProjectSerializer(serializers.Serializer):
    """A project as projects.selectors annotates it (sandbox, database, allowed_actions).

    The fields below are the contract (the OpenAPI schema is generated from them); the output is
    built directly rather than field by field, because DRF's per-field machinery was a third of
    the project list's time. tests/api/test_serializers.py holds both ways to the same output.
    """

    def to_representation(self, project):
        return {
            "id": project.id,
            "name": project.name,
            "description": project.description,
            "status": project.status,
            "createdAt": _timestamp(project.created),
            "updatedAt": _timestamp(project.updated),
            "allowedActions": list(project.allowed_actions),
            "publicUrl": project.public_url,
            "sandbox": _resource_json(related_or_none(project, "sandbox"), with_url=True),
            "database": _resource_json(related_or_none(project, "database"), with_url=False),
        }

    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    status = serializers.CharField()
    createdAt = Timestamp(source="created")
    updatedAt = Timestamp(source="updated")
    allowedActions = serializers.ListField(child=serializers.CharField(), source="allowed_actions")
    publicUrl = serializers.CharField(source="public_url")
    sandbox = SandboxSummarySerializer(allow_null=True)
    database = DatabaseSummarySerializer(allow_null=True)


# Days a filter may name: the last day is followed by a day Python can still represent (the
# query ends at the next midnight; 9999-12-31 overflowed into a 500).
FILTER_FIRST_DAY, FILTER_LAST_DAY = datetime.date(1900, 1, 1), datetime.date(9998, 12, 31)
_FILTER_DAY_RANGE = [
    MinValueValidator(FILTER_FIRST_DAY, message="Choose a day from 1900-01-01 on."),
    MaxValueValidator(FILTER_LAST_DAY, message="Choose a day up to 9998-12-31."),
]


class ProjectListQuerySerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="Words in the name or description.")
    created_from = serializers.DateField(
        required=False, validators=_FILTER_DAY_RANGE, help_text="First creation day included (YYYY-MM-DD)."
    )
    created_to = serializers.DateField(
        required=False, validators=_FILTER_DAY_RANGE, help_text="Last creation day included (YYYY-MM-DD)."
    )

    def validate(self, data):
        if data.get("created_from") and data.get("created_to") and data["created_from"] > data["created_to"]:
            raise serializers.ValidationError(
                {"created_to": serializers.ErrorDetail("The end day is before the start day.", code="invalid_range")}
            )
        return data


class ProjectCreateSerializer(serializers.Serializer):
    name = serializers.CharField(
        max_length=MAX_PROJECT_NAME_LENGTH,
        trim_whitespace=False,
        help_text="Letters, digits, spaces and hyphens, starting and ending with a letter.",
    )
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)

    def validate_name(self, value):
        try:
            return validate_project_name(value)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages[0], code="invalid_name") from None


class ProjectStateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    updatedAt = serializers.DateTimeField(source="updated")


class ProjectActionResultSerializer(serializers.Serializer):
    message = serializers.CharField()
    project = ProjectStateSerializer()


class VariableSerializer(serializers.Serializer):
    """One variable; a secret value is masked unless the view passes ``reveal=True`` in the context."""

    id = serializers.IntegerField()
    key = serializers.CharField()
    value = serializers.SerializerMethodField()
    category = serializers.CharField()
    isSecret = serializers.BooleanField(source="is_secret")
    createdAt = serializers.DateTimeField(source="created")
    updatedAt = serializers.DateTimeField(source="updated")

    def get_value(self, variable) -> str:
        if variable.is_secret and not self.context.get("reveal"):
            return mask(variable.value)
        return variable.value


class VariablesByCategorySerializer(serializers.Serializer):
    general = VariableSerializer(many=True)
    secret = VariableSerializer(many=True)
    auth = VariableSerializer(many=True)
    payment = VariableSerializer(many=True)


def _check_variable(key: str, value: str) -> None:
    """services.validate_variable's verdict, attached to the field it is about."""
    try:
        services.validate_variable(key, value)
    except DjangoValidationError as error:
        field = "key" if error.code in ("invalid_key", "reserved_key") else "value"
        raise serializers.ValidationError({field: serializers.ErrorDetail(error.messages[0], code=error.code)}) from None


class VariableInputSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=128, help_text="An environment variable name: letters, digits, underscores.")
    value = serializers.CharField(allow_blank=True, trim_whitespace=False, default="")
    category = serializers.ChoiceField(choices=WRITABLE_CATEGORIES, default=EnvironmentCategory.GENERAL)
    isSecret = serializers.BooleanField(default=False, help_text="Mask the value in pages and responses.")

    def validate(self, data):
        _check_variable(data["key"], data["value"])
        return data


class VariablesCreateSerializer(serializers.Serializer):
    """One variable (``key``, ``value``, ...) or several (``variables: [...]``)."""

    key = serializers.CharField(max_length=128, required=False)
    value = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False)
    category = serializers.ChoiceField(choices=WRITABLE_CATEGORIES, required=False)
    isSecret = serializers.BooleanField(required=False)
    variables = VariableInputSerializer(many=True, required=False, max_length=MAX_VARIABLES_PER_REQUEST)

    def validate(self, data):
        if "variables" in data:
            if "key" in data:
                raise serializers.ValidationError(
                    {"key": serializers.ErrorDetail("Send either one variable or a 'variables' list, not both.", code="ambiguous")}
                )
            items = data["variables"]
            if not items:
                raise serializers.ValidationError(
                    {"variables": serializers.ErrorDetail("The list of variables is empty.", code="empty")}
                )
            seen = set()
            for index, item in enumerate(items):
                if item["key"] in seen:
                    # DRF's own shape for list errors: one entry per item, so it reads variables[3].key.
                    item_errors = [{} for _ in items]
                    item_errors[index] = {
                        "key": [serializers.ErrorDetail(f"{item['key']} appears twice.", code="duplicate_key")]
                    }
                    raise serializers.ValidationError({"variables": item_errors})
                seen.add(item["key"])
            return {"variables": items}
        if "key" not in data:
            raise serializers.ValidationError({"key": serializers.ErrorDetail("This field is required.", code="required")})
        item = {
            "key": data["key"],
            "value": data.get("value", ""),
            "category": data.get("category", EnvironmentCategory.GENERAL),
            "isSecret": data.get("isSecret", False),
        }
        _check_variable(item["key"], item["value"])
        return {"variables": [item]}


class VariableUpdateSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=128, required=False)
    value = serializers.CharField(allow_blank=True, trim_whitespace=False)
    category = serializers.ChoiceField(choices=WRITABLE_CATEGORIES, required=False)
    isSecret = serializers.BooleanField(required=False)

    def validate(self, data):
        key = data.get("key", self.context["variable"].key)
        _check_variable(key, data["value"])
        return data


class VariableListResultSerializer(serializers.Serializer):
    message = serializers.CharField()
    variables = VariableSerializer(many=True)


class VariableResultSerializer(serializers.Serializer):
    message = serializers.CharField()
    variable = VariableSerializer()


class MessageSerializer(serializers.Serializer):
    message = serializers.CharField()


class DatabaseConnectionSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="The database's status; the fields below are empty until it first runs.")
    available = serializers.BooleanField()
    host = serializers.CharField()
    port = serializers.IntegerField(allow_null=True)
    database = serializers.CharField()
    user = serializers.CharField()
    password = serializers.CharField(help_text="Masked, except from the reveal endpoint.")
    connectionString = serializers.CharField(source="connection_string")


class ResourceEventSerializer(serializers.Serializer):
    """One status transition of a project's sandbox or database (projects.models.ResourceEvent)."""

    id = serializers.IntegerField()
    resourceKind = serializers.ChoiceField(source="resource_kind", choices=ResourceKind.choices)
    resourceId = serializers.IntegerField(source="resource_id")
    resourceName = serializers.CharField(source="resource_name")
    fromStatus = serializers.CharField(source="from_status", help_text="Empty for the event of the resource's creation.")
    toStatus = serializers.CharField(source="to_status")
    reason = serializers.CharField(help_text="Why: the error, the drift found, the deadline passed; empty for a plain step.")
    cause = serializers.ChoiceField(
        choices=TransitionCause.choices,
        help_text="user: a start, stop, delete or environment change; reconcile: a step towards the desired state; "
        "drift: the resource was found not running and restarted (or given up on); deadline: it stayed in a "
        "transitional status too long.",
    )
    createdAt = Timestamp(source="created")
