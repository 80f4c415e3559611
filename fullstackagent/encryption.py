"""Encryption of secrets at rest.

Values are Fernet tokens (AES-128-CBC + HMAC-SHA256) under the keys in ``FIELD_ENCRYPTION_KEYS``:
the first key encrypts, every key decrypts (``MultiFernet``), so a key is rotated by putting a new
one first and running ``manage.py rotate_encryption_keys``, which re-encrypts every stored value
under it; the old key can then be dropped.

The column holds ``fernet:<token>``; the prefix lets the rotation command and tests tell an
encrypted value from anything else at a glance.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as error:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS holds a key that is not 32 url-safe base64-encoded bytes "
            "(make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        ) from error


def fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(value: str) -> str:
    return PREFIX + fernet().encrypt(value.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        raise SecretDecryptionError("stored value is not an encrypted token")
    try:
        return fernet().decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError(
            "cannot decrypt a stored secret with the configured FIELD_ENCRYPTION_KEYS: the key that "
            "encrypted it is missing (add the old key after the new one, then run rotate_encryption_keys)"
        ) from None


def rotate(stored: str) -> str:
    """The same secret encrypted under the first (current) key."""
    try:
        return PREFIX + fernet().rotate(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError("cannot re-encrypt: no configured key decrypts this value") from None


def mask(value: str | None) -> str:
    """What pages and responses show instead of a secret: its length class, never its characters."""
    if not value:
        return ""
    return "••••••••"


class EncryptedTextField(models.TextField):
    """A text column whose content is always a Fernet token; Python code sees the clear value.

    Not searchable or orderable by content, by design: nothing should filter on a secret.
    """

    description = "Text encrypted at rest"

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)


class EncryptedJSONField(models.TextField):
    """A JSON document stored as one encrypted token (identity metadata holding OAuth tokens)."""

    description = "JSON encrypted at rest"

    def from_db_value(self, value, expression, connection):
        import json

        if value is None or value == "":
            return {}
        return json.loads(decrypt(value))

    def to_python(self, value):
        import json

        if isinstance(value, dict) or value is None:
            return value or {}
        if isinstance(value, str) and value.startswith(PREFIX):
            return json.loads(decrypt(value))
        return json.loads(value) if value else {}

    def get_prep_value(self, value):
        import json

        return encrypt(json.dumps(value or {}, sort_keys=True))
