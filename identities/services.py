"""Writes to identities and user settings."""

import logging
import re

from django.contrib.auth import get_user_model
from django.db import connection, transaction

from identities import sealos
from identities.models import ConfigCategory, ConfigKey, IdentityProvider, UserConfig, UserIdentity, UserQuota
from identities.signals import sealos_user_signed_in, user_config_changed

logger = logging.getLogger(__name__)


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
    """Creates or updates one setting; an empty value removes it. Announced with
    user_config_changed (projects re-applies the environment of the user's sandboxes)."""
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
    user_config_changed.send(sender=UserConfig, user_id=user.pk, key=key)
    return row


# The longest idle stop a user may choose (a week); 0 turns it off.
MAX_IDLE_STOP_MINUTES = 7 * 24 * 60


@transaction.atomic
def set_idle_stop_minutes(user, minutes: int | None) -> UserQuota:
    """The user's own idle stop (None: the platform's IDLE_STOP_MINUTES; 0: never). Kept on their
    UserQuota row, where an operator sees it; the row's limits are left as they are. Read at each
    drift check, so running sandboxes follow it at once."""
    if minutes is not None and not 0 <= minutes <= MAX_IDLE_STOP_MINUTES:
        raise ValueError(f"Choose 0 to {MAX_IDLE_STOP_MINUTES} minutes.")
    quota, _ = UserQuota.objects.select_for_update().get_or_create(user=user)
    quota.idle_stop_minutes = minutes
    quota.save(update_fields=["idle_stop_minutes"])
    return quota


# --- linked identities ---------------------------------------------------------------------------
# One user, several ways to sign in. Every change below locks the user's row first, so two requests
# changing the same user's identities (link in one tab, unlink in another) run one after the other
# and `is_primary` never ends up on zero or two rows. The partial unique constraint
# identity_one_primary_per_user is the database's backstop for "at most one".


class IdentityError(Exception):
    """A link/unlink/primary change that is refused; the message is shown to the user."""


class IdentityInUse(IdentityError):
    """The provider account already signs in another user."""


class LastIdentity(IdentityError):
    """Unlinking would leave the user with no way to sign in."""


def _lock_user(user):
    return get_user_model().objects.select_for_update(no_key=True).get(pk=user.pk)


@transaction.atomic
def do_link_identity(user, provider: str, provider_user_id: str, *, metadata: dict) -> UserIdentity:
    """Records that ``user`` signs in with this provider account (creating or refreshing the row);
    the first identity a user gets is primary. Refuses an account that belongs to another user."""
    _lock_user(user)
    provider_user_id = str(provider_user_id)
    identity = (
        UserIdentity.objects.select_for_update()
        .filter(provider=provider, provider_user_id=provider_user_id)
        .first()
    )
    if identity is not None and identity.user_id != user.pk:
        raise IdentityInUse(f"This {identity.get_provider_display()} account is already linked to another user.")
    if identity is not None:
        identity.metadata = metadata
        identity.save(update_fields=["metadata", "updated"])
        return identity
    has_primary = UserIdentity.objects.filter(user=user, is_primary=True).exists()
    return UserIdentity.objects.create(
        user=user,
        provider=provider,
        provider_user_id=provider_user_id,
        metadata=metadata,
        is_primary=not has_primary,
    )


@transaction.atomic
def do_unlink_identity(user, identity_id: int) -> None:
    """Removes one of the user's sign-in methods, never the last; when it was primary, the oldest
    remaining identity becomes primary. Raises UserIdentity.DoesNotExist for another user's row."""
    user = _lock_user(user)
    identities = list(UserIdentity.objects.select_for_update().filter(user=user).order_by("created", "pk"))
    identity = next((row for row in identities if row.pk == identity_id), None)
    if identity is None:
        raise UserIdentity.DoesNotExist
    if len(identities) == 1:
        raise LastIdentity("This is your only sign-in method; link another one before removing it.")
    identity.delete()
    # The provider's own record goes too, or the method would still work after "unlinking".
    if identity.provider == IdentityProvider.GITHUB:
        from allauth.socialaccount.models import SocialAccount

        SocialAccount.objects.filter(user=user, provider="github", uid=identity.provider_user_id).delete()
    elif identity.provider == IdentityProvider.PASSWORD:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    if identity.is_primary:
        successor = next(row for row in identities if row.pk != identity.pk)
        UserIdentity.objects.filter(pk=successor.pk).update(is_primary=True)


@transaction.atomic
def do_set_primary(user, identity_id: int) -> UserIdentity:
    """Makes one of the user's identities the primary one. Raises UserIdentity.DoesNotExist for
    another user's row; does nothing when it already is primary."""
    _lock_user(user)
    identity = UserIdentity.objects.select_for_update().get(user=user, pk=identity_id)
    if identity.is_primary:
        return identity
    # Clear the old primary first: the partial unique constraint is checked per statement.
    UserIdentity.objects.filter(user=user, is_primary=True).update(is_primary=False)
    UserIdentity.objects.filter(pk=identity.pk).update(is_primary=True)
    identity.is_primary = True
    return identity


# --- Sealos sign-in ------------------------------------------------------------------------------


def _free_username(wanted: str) -> str:
    """A username for a new account: ``wanted`` reduced to the characters Django accepts, with a
    numeric suffix when a local account already has it (a password user may have picked it)."""
    users = get_user_model().objects
    base = re.sub(r"[^\w.@+-]", "", wanted)[:140] or "sealos-user"
    candidate, number = base, 1
    while users.filter(username__iexact=candidate).exists():
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def do_sign_in_with_sealos(token: str, kubeconfig: str):
    """Verifies the session and kubeconfig, then finds or creates the user (one transaction), then,
    outside that transaction, announces the sign-in (sealos_user_signed_in: aiproxy asks for an
    Anthropic key when the user has none; a failure there never refuses the sign-in). Returns
    (user, created); raises SealosSignInRefused."""
    session = sealos.verify_session_token(token)
    sealos.check_kubeconfig(kubeconfig)
    user, created = _record_sealos_user(session, kubeconfig)
    sealos_user_signed_in.send(sender=UserIdentity, user=user, sealos_user_id=session.user_id, kubeconfig=kubeconfig)
    logger.info("sealos sign-in: user %s (%s)", user.pk, "new" if created else "returning")
    return user, created


@transaction.atomic
def _record_sealos_user(session, kubeconfig: str):
    """Finds or creates the user of a verified Sealos session, records its SEALOS identity and
    stores the kubeconfig (encrypted) as the user's KUBECONFIG, all in one transaction: a failure
    anywhere leaves no user, identity or setting behind. Returns (user, created)."""
    # Two tabs opening the app at once would both find no identity and both create a user; this
    # lock (released at commit) makes the second wait and then find the first one's identity.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"sealos-sign-in:{session.user_id}"])
    identity = (
        UserIdentity.objects.select_related("user")
        .filter(provider=IdentityProvider.SEALOS, provider_user_id=session.user_id)
        .first()
    )
    if identity is not None:
        user, created = identity.user, False
        if not user.is_active:
            raise sealos.SealosSignInRefused("ACCOUNT_DISABLED", "This account is disabled.", 403)
    else:
        # No password: this account signs in through Sealos until the user links another method.
        user, created = get_user_model().objects.create_user(username=_free_username(session.user_id)), True
    do_link_identity(user, IdentityProvider.SEALOS, session.user_id, metadata=session.identity_metadata())
    # Unchanged kubeconfig: no write, so running sandboxes are not marked for re-apply on every sign-in.
    if get_user_config(user, ConfigKey.KUBECONFIG) != kubeconfig:
        set_user_config(user, ConfigKey.KUBECONFIG, kubeconfig)
    return user, created
