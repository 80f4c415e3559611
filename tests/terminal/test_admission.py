"""Issue 17: a terminal is admitted in one query, with the answers of Django's own checks.

The owner's usual case (signed in, their project, its sandbox running) reads the session, project,
owner, sandbox and terminal token in one statement and writes the audit row in one more; every
other case goes through Django's get_user and the ORM and must come out exactly as before. Each
case below runs against the real session store, as the websocket's session is.
"""

import base64
from datetime import timedelta
from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY
from django.contrib.sessions.models import Session
from django.utils import timezone

from fullstackagent.status import ProjectStatus, ResourceStatus
from projects.models import Project
from sandboxes import terminal
from sandboxes.environment import TERMINAL_TOKEN_KEY
from sandboxes.models import Sandbox, TerminalSession
from sandboxes.reconcile import build_spec
from tests.terminal.conftest import session_cookie


def websocket_session(cookie: str):
    """The session object the websocket gets: a store for the cookie's key, not yet loaded."""
    return import_module(settings.SESSION_ENGINE).SessionStore(cookie)


def refusal(session, project_id) -> int:
    with pytest.raises(terminal.TerminalRefused) as refused:
        terminal.do_admit_session(session, project_id, "main", "127.0.0.1")
    return refused.value.close_code


def test_the_owner_is_admitted_in_two_statements_with_the_token_and_an_audit_row(
    running_project, user, django_assert_num_queries
):
    session = websocket_session(session_cookie(user))
    terminal.note_activity(Sandbox.objects.get(project=running_project).pk)  # this interval's note is taken
    with django_assert_num_queries(2):  # the admission's SELECT, the audit's INSERT
        admitted_user, admission = terminal.do_admit_session(session, running_project.pk, "work", "10.1.2.3")
    assert admitted_user.pk == user.pk and admitted_user.username == user.username
    sandbox = Sandbox.objects.get(project=running_project)
    token = build_spec(sandbox).environment[TERMINAL_TOKEN_KEY]
    assert base64.b64decode(admission.upstream.auth_token).decode().endswith(f":{token}")
    assert admission.sandbox_id == sandbox.pk
    audit = TerminalSession.objects.get(pk=admission.terminal_session_id)
    assert (audit.sandbox_id, audit.user_id, audit.session_name, audit.client_address) == (sandbox.pk, user.pk, "work", "10.1.2.3")
    assert audit.ended is None and audit.started <= timezone.now()
    # The same upstream as the general path's answer for the same user.
    assert terminal.do_admit_terminal(user, running_project.pk, "main").upstream == admission.upstream

    terminal.do_finish_terminal(admission.terminal_session_id, bytes_from_browser=10, bytes_to_browser=2000, close_code=1000)
    terminal.do_finish_terminal(admission.terminal_session_id, bytes_from_browser=99, bytes_to_browser=99, close_code=1006)
    audit.refresh_from_db()
    # Closed once: a second close of the same entry changes nothing.
    assert (audit.bytes_from_browser, audit.bytes_to_browser, audit.close_code) == (10, 2000, 1000)
    assert audit.ended is not None


def test_the_owners_sandbox_not_running_is_4409_in_one_statement(running_project, user, django_assert_num_queries):
    Sandbox.objects.filter(project=running_project).update(status=ResourceStatus.STOPPED)
    session = websocket_session(session_cookie(user))
    with django_assert_num_queries(1):
        assert refusal(session, running_project.pk) == terminal.CLOSE_NOT_RUNNING
    assert not TerminalSession.objects.exists()


def test_another_users_project_and_a_missing_one_are_4404(running_project, other_user):
    session = websocket_session(session_cookie(other_user))
    assert refusal(session, running_project.pk) == terminal.CLOSE_NOT_FOUND
    assert refusal(websocket_session(session.session_key), running_project.pk + 1000) == terminal.CLOSE_NOT_FOUND
    Project.objects.filter(pk=running_project.pk).update(status=ProjectStatus.TERMINATED)
    assert refusal(websocket_session(session_cookie(running_project.user)), running_project.pk) == terminal.CLOSE_NOT_FOUND
    assert not TerminalSession.objects.exists()


def test_a_session_that_no_longer_signs_its_user_in_is_4401(running_project, user):
    # No session at all, and an unknown key.
    assert refusal(None, running_project.pk) == terminal.CLOSE_NOT_SIGNED_IN
    assert refusal(websocket_session("no-such-session-key-0123456789"), running_project.pk) == terminal.CLOSE_NOT_SIGNED_IN
    # Expired.
    cookie = session_cookie(user)
    Session.objects.filter(session_key=cookie).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert refusal(websocket_session(cookie), running_project.pk) == terminal.CLOSE_NOT_SIGNED_IN
    # The user was deactivated.
    cookie = session_cookie(user)
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    assert refusal(websocket_session(cookie), running_project.pk) == terminal.CLOSE_NOT_SIGNED_IN
    type(user).objects.filter(pk=user.pk).update(is_active=True)
    # The password changed since: the session's hash no longer matches, and Django flushes it.
    cookie = session_cookie(user)
    user.set_password("a-new-horse-battery")
    user.save()
    assert refusal(websocket_session(cookie), running_project.pk) == terminal.CLOSE_NOT_SIGNED_IN
    assert not Session.objects.filter(session_key=cookie).exists()
    # A session whose hash was removed.
    cookie = session_cookie(user)
    store = websocket_session(cookie)
    del store[HASH_SESSION_KEY]
    store.save()
    assert refusal(websocket_session(cookie), running_project.pk) == terminal.CLOSE_NOT_SIGNED_IN
    assert not TerminalSession.objects.exists()


def test_a_session_signed_with_a_retired_secret_is_admitted_and_renewed_as_django_does(running_project, user, settings):
    cookie = session_cookie(user)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 40
    session = websocket_session(cookie)
    admitted_user, admission = terminal.do_admit_session(session, running_project.pk, "main")
    assert admitted_user.pk == user.pk
    assert TerminalSession.objects.filter(pk=admission.terminal_session_id, user=user).exists()
    # Django's get_user moved the session to a new key with the current secret's hash.
    assert session.session_key != cookie
    assert session[HASH_SESSION_KEY] == user.get_session_auth_hash()


def test_with_sessions_kept_elsewhere_the_general_path_admits(running_project, user, settings, django_assert_max_num_queries):
    """The one statement reads django_session; with another session store (signed cookies here)
    the admission goes the general way and does not look there."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    session = websocket_session(session_cookie(user))
    with django_assert_max_num_queries(10) as queries:
        admitted_user, admission = terminal.do_admit_session(session, running_project.pk, "main")
    assert admitted_user.pk == user.pk
    assert TerminalSession.objects.filter(pk=admission.terminal_session_id).exists()
    assert not any(Session._meta.db_table in query["sql"] for query in queries.captured_queries)
