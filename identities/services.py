"""Writes to identities and user settings."""

from django.db import transaction

from identities.models import ConfigCategory, ConfigKey, IdentityProvider, UserConfig, UserIdentity


@transaction.atomic
def record_password_identity(user) -> UserIdentity:
    """The PASSWORD identity of a user who signed up with a username; primary if it is the first."""
    has_primary = UserIdentity.objects.filter(user=user, is_primary=True).exists()
    identity, _ = UserIdentity.objects.get_or_create(
        provider=IdentityProvider.PASSWORD,
        provider_user_id=str(user.pk),
        defaults={"user": user, "is_primary": not has_primary, "metadata": {"username": user.username}},
    )
    return identity


_CATEGORY_BY_KEY = {
    ConfigKey.KUBECONFIG: ConfigCategory.KUBERNETES,
    ConfigKey.ANTHROPIC_API_KEY: ConfigCategory.ANTHROPIC,
    ConfigKey.ANTHROPIC_BASE_URL: ConfigCategory.ANTHROPIC,
    ConfigKey.ANTHROPIC_MODEL: ConfigCategory.ANTHROPIC,
    ConfigKey.ANTHROPIC_SMALL_FAST_MODEL: ConfigCategory.ANTHROPIC,
    ConfigKey.SYSTEM_PROMPT: ConfigCategory.AGENT,
}


def get_user_config(user, key: str, default: str = "") -> str:
    row = UserConfig.objects.filter(user=user, key=key).only("value").first()
    return row.value if row else default


def user_config_map(user_id: int) -> dict[str, str]:
    return dict(UserConfig.objects.filter(user_id=user_id).values_list("key", "value"))


@transaction.atomic
def set_user_config(user, key: str, value: str, *, is_secret: bool | None = None) -> UserConfig:
    """Creates or updates one setting; an empty value removes it. Sandboxes that use it are
    re-reconciled (their environment depends on the user's Anthropic settings and prompt)."""
    if is_secret is None:
        is_secret = key in ConfigKey.SECRET
    if value == "":
        UserConfig.objects.filter(user=user, key=key).delete()
        row = None
    else:
        row, _ = UserConfig.objects.update_or_create(
            user=user,
            key=key,
            defaults={"value": value, "is_secret": is_secret, "category": _CATEGORY_BY_KEY.get(key, ConfigCategory.GENERAL)},
        )
    from sandboxes.services import environment_changed_for_user

    environment_changed_for_user(user.pk)
    return row
