"""Issue 14, finding 3: the development error page and error reports show no credential.

The page used to list DATABASE_URL and LOCAL_DATABASE_ADMIN_URL whole (Django hides settings by
name, and these names say URL), the PostgreSQL superuser's password with them.
"""

import sys
from urllib.parse import urlsplit

import pytest
from django.test import RequestFactory

from fullstackagent.error_reports import MASK, CredentialMaskingReporter
from projects import views

ADMIN_URL = "postgresql://postgres:Admin-Pa55word@db.internal:5432/postgres"
REDIS_URL = "redis://:Redis-Pa55word@cache.internal:6379/0"


@pytest.fixture
def failing_projects_page(monkeypatch):
    def fail(request):
        dsn = "postgresql://app:Local-Pa55word@10.0.0.9:5432/app"  # a credential in a traceback's locals
        raise RuntimeError(f"could not connect with {dsn}")

    monkeypatch.setattr(views, "_cards_context", fail)


def test_the_debug_error_page_masks_urls_and_configured_secrets(user_client, settings, failing_projects_page):
    settings.DEBUG = True
    settings.LOCAL_DATABASE_ADMIN_URL = ADMIN_URL
    settings.REDIS_URL = REDIS_URL
    user_client.raise_request_exception = False
    database_password = urlsplit(settings.DATABASE_URL).password

    response = user_client.get("/")
    page = response.content.decode()

    assert response.status_code == 500
    assert "could not connect with postgresql://app:" in page  # the report is still there...
    assert database_password and len(database_password) >= 6
    for secret in ("Admin-Pa55word", "Redis-Pa55word", "Local-Pa55word", database_password, settings.SECRET_KEY):
        assert secret not in page  # ...without a credential
    assert f"postgresql://postgres:{MASK}@db.internal:5432/postgres" in page
    assert f"redis://:{MASK}@cache.internal:6379/0" in page
    assert f"postgresql://app:{MASK}@10.0.0.9:5432/app" in page


def test_the_text_report_of_error_emails_masks_them_too(settings):
    settings.LOCAL_DATABASE_ADMIN_URL = ADMIN_URL
    request = RequestFactory().get("/?q=x")
    try:
        raise ValueError(f"password=Admin-Pa55word host=db.internal ({ADMIN_URL})")
    except ValueError:
        report = CredentialMaskingReporter(request, *sys.exc_info()).get_traceback_text()

    assert "Admin-Pa55word" not in report
    assert f"password={MASK} host=db.internal" in report
