"""Error reports (the development error page, the error e-mails of production) that show no credential.

Django's filter hides settings by their names (``*PASS*``, ``*SECRET*``, ...), so ``DATABASE_URL``
and ``LOCAL_DATABASE_ADMIN_URL`` were shown whole, the PostgreSQL superuser's password with them,
to anyone who could make a page fail while DEBUG was on. Two layers:

- ``CredentialMaskingFilter`` masks the password inside any URL (``scheme://user:password@host``)
  in settings and in the traceback's local variables, besides what Django already hides;
- ``CredentialMaskingReporter`` replaces, in the finished report, every URL password and every
  secret the platform is configured with (database and Redis passwords, the signing and
  encryption keys), wherever it shows up: an exception's message, a repr, a DSN in key=value form.
"""

import html
import re
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

MASK = SafeExceptionReporterFilter.cleansed_substitute
# The password of a URL's userinfo: scheme://user:password@
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"<>]*:)(?P<password>[^\s@/'\"<>]+)(?=@)")
# Settings holding URLs whose passwords are masked wherever they appear.
_URL_SETTINGS = ("DATABASE_URL", "LOCAL_DATABASE_ADMIN_URL", "REDIS_URL", "CELERY_BROKER_URL", "AIPROXY_ENDPOINT")
# Shorter strings are not worth masking (they would blank out ordinary words).
_MIN_SECRET_LENGTH = 6


def mask_url_credentials(text: str) -> str:
    return _URL_PASSWORD.sub(lambda match: match.group("head") + MASK, text)


def _configured_secrets() -> set[str]:
    found = set()
    for name in _URL_SETTINGS:
        password = urlsplit(str(getattr(settings, name, "") or "")).password
        if password:
            found.update({password, unquote(password)})
    for database in settings.DATABASES.values():
        found.add(str(database.get("PASSWORD") or ""))
    found.add(str(settings.SECRET_KEY))
    found.update(str(key) for key in getattr(settings, "FIELD_ENCRYPTION_KEYS", []))
    found |= {html.escape(secret) for secret in found}  # as the HTML page writes them
    return {secret for secret in found if len(secret) >= _MIN_SECRET_LENGTH}


def mask_secrets(text: str) -> str:
    text = mask_url_credentials(text)
    # Longest first: a secret containing another is replaced whole.
    for secret in sorted(_configured_secrets(), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class CredentialMaskingFilter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        return mask_url_credentials(cleansed) if isinstance(cleansed, str) else cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, mask_url_credentials(value) if isinstance(value, str) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


class CredentialMaskingReporter(ExceptionReporter):
    def get_traceback_html(self):
        return mask_secrets(super().get_traceback_html())

    def get_traceback_text(self):
        return mask_secrets(super().get_traceback_text())
