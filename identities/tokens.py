"""Personal API tokens: creation, revocation, and the DRF authentication class that reads them.

A token looks like ``fsa_<43 url-safe characters>``. The prefix makes a leaked token easy to spot
(secret scanners, logs); only its SHA-256 hash is stored (identities.models.ApiToken).
"""

import hashlib
import secrets
from datetime import timedelta
from functools import lru_cache

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from identities.models import ApiToken

TOKEN_PREFIX = "fsa_"
TOKEN_BYTES = 32  # 256 bits
SHOWN_PREFIX_LENGTH = 8  # "fsa_" and four characters: enough to tell tokens apart, useless to guess
MAX_ACTIVE_TOKENS = 50
# last_used is a hint for the user ("used 3 minutes ago"), not an audit log: writing it on every
# request would add an UPDATE to each API call.
LAST_USED_PRECISION = timedelta(minutes=1)


class TokenLimitReached(Exception):
    code = "TOKEN_LIMIT_REACHED"


def hash_token(clear_token: str) -> str:
    return hashlib.sha256(clear_token.encode()).hexdigest()


@transaction.atomic
def do_create_api_token(user, *, name: str) -> tuple[ApiToken, str]:
    """Creates a token and returns it with its clear text, which is never available again."""
    name = name.strip()
    if ApiToken.objects.filter(user=user, revoked__isnull=True).count() >= MAX_ACTIVE_TOKENS:
        raise TokenLimitReached(f"You have {MAX_ACTIVE_TOKENS} active tokens; revoke one you no longer use first.")
    clear_token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=clear_token[:SHOWN_PREFIX_LENGTH], token_hash=hash_token(clear_token)
    )
    return token, clear_token


@transaction.atomic
def do_revoke_api_token(user, token_id: int) -> ApiToken:
    """Revokes one of the user's tokens (again: no change). Raises ApiToken.DoesNotExist for
    another user's token, so callers answer 404 exactly as for a missing one."""
    token = ApiToken.objects.select_for_update().get(user=user, pk=token_id)
    if token.revoked is None:
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])
    return token


@lru_cache(maxsize=1)
def _token_lookup() -> tuple[str, list[str]]:
    """The SQL that finds an active token's user, and the user's field names in its column order.

    Every API request runs it, so it is written once rather than compiled by the ORM each time
    (the queryset cost three times the query itself: 1.0 ms against 0.3 ms, bench/api.py). Table and
    column names come from the models, so a schema change cannot leave it behind.
    """
    user_model = get_user_model()
    fields = user_model._meta.concrete_fields
    columns = ", ".join(f'u."{field.column}"' for field in fields)
    sql = (
        f'SELECT t."id", t."last_used", {columns} '
        f'FROM "{ApiToken._meta.db_table}" t JOIN "{user_model._meta.db_table}" u ON u."id" = t."user_id" '
        f'WHERE t."token_hash" = %s AND t."revoked" IS NULL'
    )
    return sql, [field.attname for field in fields]


def user_for_token(clear_token: str):
    """The active user a token belongs to, or None. Marks the token used (at most once a minute)."""
    if not clear_token.startswith(TOKEN_PREFIX):
        return None
    sql, user_fields = _token_lookup()
    with connection.cursor() as cursor:
        cursor.execute(sql, [hash_token(clear_token)])
        row = cursor.fetchone()
    if row is None:
        return None
    token_id, last_used, user = row[0], row[1], get_user_model().from_db(connection.alias, user_fields, row[2:])
    if not user.is_active:
        return None
    now = timezone.now()
    if last_used is None or now - last_used > LAST_USED_PRECISION:
        # A conditional UPDATE, so concurrent requests with one token write once per minute.
        ApiToken.objects.filter(pk=token_id).exclude(last_used__gt=now - LAST_USED_PRECISION).update(last_used=now)
    return user


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer fsa_...``. Listed first in REST_FRAMEWORK so that an anonymous
    request gets 401 with a ``WWW-Authenticate`` challenge rather than DRF's 403."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None  # not ours: the session may still authenticate the request
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the token as 'Authorization: Bearer <token>'.")
        try:
            clear_token = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The API token is not valid.") from None
        user = user_for_token(clear_token)
        if user is None:
            raise exceptions.AuthenticationFailed(
                "The API token is not valid or was revoked; create a new one in Settings → API tokens."
            )
        return user, None

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents the token in the OpenAPI schema (the docs page's "Authorize" button)."""

    target_class = "identities.tokens.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token from Settings → API tokens (fsa_...).",
        }
