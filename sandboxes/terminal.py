"""The web terminal's services: who may open a project's terminal, where it connects, the audit trail,
and uploads into the shell's directory.

The Channels consumer (sandboxes.consumers) speaks the websocket protocol and calls in here through
``database_sync_to_async``; the views (projects.terminal_views) call in directly. Nothing here ever returns
the terminal token to a caller that could hand it to a browser: ``TerminalAdmission.upstream`` stays
inside the consumer.
"""

import fcntl
import functools
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from types import SimpleNamespace
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user, get_user_model, load_backend
from django.contrib.auth.backends import ModelBackend
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import OuterRef, Subquery
from django.http.request import split_domain_port, validate_host
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from fullstackagent.backends import BackendError
from fullstackagent.reconcile import mark_due
from fullstackagent.status import ProjectStatus, ResourceStatus
from identities.models import ConfigKey, UserConfig
from projects.models import Environment, Project
from sandboxes.activity import note_activity
from sandboxes.backends import get_sandbox_backend
from sandboxes.backends.base import TerminalUpstream
from sandboxes.models import Sandbox, TerminalSession
from sandboxes.environment import TERMINAL_TOKEN_KEY
from sandboxes.reconcile import build_spec, terminal_spec, terminal_spec_of

# Close codes the browser gets, one per reason (4000-4999 is the application range of RFC 6455).
# The page (static/js/terminal.js) maps each to a message and decides whether to reconnect.
CLOSE_BAD_REQUEST = 4400  # malformed session name or first frame; reconnecting cannot help
CLOSE_NOT_SIGNED_IN = 4401  # no session cookie, or an expired one
CLOSE_FOREIGN_ORIGIN = 4403  # the page that opened the socket is not this site
CLOSE_NOT_FOUND = 4404  # no such project, or another user's: the same answer, as for HTTP 404
CLOSE_NOT_RUNNING = 4409  # the project's sandbox is not RUNNING (starting, stopped, ...)
CLOSE_UPSTREAM_GONE = 4502  # the sandbox's terminal could not be reached, or it closed

SESSION_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
DEFAULT_SESSION_NAME = "main"


class TerminalRefused(Exception):
    """The terminal cannot be opened; ``close_code`` says why (one of the CLOSE_* codes)."""

    def __init__(self, close_code: int, message: str):
        super().__init__(message)
        self.close_code = close_code


@dataclass(frozen=True)
class TerminalAdmission:
    """What the consumer needs once a user is let in; ``upstream`` carries the token."""

    terminal_session_id: int
    upstream: TerminalUpstream
    sandbox_id: int = 0  # whose activity the relay records (sandboxes.activity)

    def __repr__(self):  # never print the credential, even in a traceback's locals
        return f"TerminalAdmission(terminal_session_id={self.terminal_session_id}, upstream=<{self.upstream.url}>)"


def valid_session_name(name: str | None) -> str:
    """The tmux session name, checked as runtime/terminal-session.sh checks it."""
    if name is None or name == "":
        return DEFAULT_SESSION_NAME
    if not SESSION_NAME_PATTERN.fullmatch(name):
        raise TerminalRefused(CLOSE_BAD_REQUEST, "Session names are 1 to 32 of A-Z a-z 0-9 _ -.")
    return name


def origin_allowed(origin: str | None, host: str | None) -> bool:
    """Whether a websocket opened by a page at ``origin`` may use this site's terminal.

    Browsers attach cookies to cross-site websocket handshakes and do not apply CORS to them, so
    without this check any page a signed-in user visits could drive their shell. The rule is
    Django's CSRF rule for an Origin header: the origin is this very site (its host and port equal
    the request's Host header, and that host is in ALLOWED_HOSTS), or it is listed in
    CSRF_TRUSTED_ORIGINS (e.g. a front-end host behind the same proxy). The scheme is not compared:
    TLS usually ends at a proxy, so the platform cannot tell ws from wss, and one host and port
    serve one scheme. No Origin header at all is refused: every browser sends one.
    """
    if not origin or not host:
        return False
    origin = origin.strip().lower()
    if origin in {trusted.lower().rstrip("/") for trusted in settings.CSRF_TRUSTED_ORIGINS}:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    host = host.strip().lower()
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    return _with_default_port(parts.netloc, parts.scheme) == _with_default_port(host, parts.scheme)


def _with_default_port(netloc: str, scheme: str) -> str:
    """``example.com`` and ``example.com:443`` name the same https site."""
    domain, port = split_domain_port(netloc)
    if not port:
        port = "443" if scheme == "https" else "80"
    return f"{domain}:{port}"


def owned_project(user, project_id: int) -> Project | None:
    """The user's visible project, or None for a missing one and another user's alike."""
    if not user.is_authenticated:
        return None
    return Project.objects.visible().filter(pk=project_id, user=user).first()


def project_sandbox(project: Project) -> Sandbox | None:
    """The project's current sandbox (there is one per project; terminated rows stay for the audit)."""
    return Sandbox.objects.filter(project=project).exclude(status=ResourceStatus.TERMINATED).order_by("-pk").first()


def do_admit_terminal(user, project_id: int, session_name: str, client_address: str = "") -> TerminalAdmission:
    """Checks the user may open this terminal now and records the audit entry.

    Raises TerminalRefused (4404 not theirs, 4409 not running, 4502 no upstream). The audit row is
    written only for users who own the project: refusals of strangers leave no trace tied to a
    sandbox they must not learn about.
    """
    # The user's visible project, its current sandbox and its terminal token in one query; the two
    # refusals are told apart only when there is one to give.
    token = Environment.objects.filter(project=OuterRef("project_id"), key=TERMINAL_TOKEN_KEY).values("value")[:1]
    sandbox = (
        Sandbox.objects.select_related("project")
        .filter(project__in=Project.objects.visible().filter(pk=project_id, user=user))
        .exclude(status=ResourceStatus.TERMINATED)
        # Decrypted as the field itself is: the annotation has the field as its output.
        .annotate(terminal_token=Subquery(token, output_field=Environment._meta.get_field("value")))
        .order_by("-pk")
        .first()
    )
    if sandbox is None and owned_project(user, project_id) is None:
        raise TerminalRefused(CLOSE_NOT_FOUND, "No such project.")
    if sandbox is None or sandbox.status != ResourceStatus.RUNNING:
        status = sandbox.status if sandbox else "missing"
        raise TerminalRefused(CLOSE_NOT_RUNNING, f"The sandbox is {status}, not RUNNING.")
    try:
        upstream = get_sandbox_backend().terminal_upstream(terminal_spec(sandbox, sandbox.terminal_token))
    except BackendError as error:
        raise TerminalRefused(CLOSE_UPSTREAM_GONE, str(error)) from error
    audit = TerminalSession.objects.create(
        sandbox=sandbox, user=user, session_name=session_name, client_address=client_address[:64]
    )
    note_activity(sandbox.pk)
    return TerminalAdmission(terminal_session_id=audit.pk, upstream=upstream, sandbox_id=sandbox.pk)


def do_admit_session(session, project_id: int, session_name: str, client_address: str = ""):
    """The whole admission of a websocket, in one call (one thread hop from the relay): who the
    session's user is (as Django's get_user: the session's auth hash must still match), then
    do_admit_terminal. Returns (user, admission); raises TerminalRefused (4401 not signed in).

    The usual case, the owner opening their project's terminal, is read in one query
    (``_admit_in_one_query``); anything else (a refusal, a session that needs Django's own care)
    takes the general path below, whose answers are the same."""
    admitted = _admit_in_one_query(session, project_id, session_name, client_address)
    if admitted is not None:
        return admitted
    user = get_user(SimpleNamespace(session=session)) if session is not None else None
    if user is None or not user.is_authenticated:
        raise TerminalRefused(CLOSE_NOT_SIGNED_IN, "Not signed in.")
    return user, do_admit_terminal(user, project_id, session_name, client_address)


# --- the admission in one query ------------------------------------------------------------------
# Opening a terminal is the platform's most frequent authenticated act after page loads (every tab,
# every reconnect after a deploy), and the ORM spent most of an admission compiling its queries
# (py-spy on the web process (daphne, then) during bench/terminal.py's storm: the sandbox query's compilation alone was a
# quarter of its CPU). The owner's case reads the session, the project, its owner, its sandbox,
# its terminal token and the owner's kubeconfig in one statement written once per process; the
# audit row is one INSERT and its close one UPDATE, written the same way.


# Session stores whose sessions are rows of django_session (cached_db keeps the same rows).
_SESSIONS_IN_THE_DATABASE = ("django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db")


@functools.cache
def _admission_statement() -> tuple[str, list]:
    """The statement, and the user model's fields in the order of its last columns."""
    user_model = get_user_model()
    user_fields = list(user_model._meta.concrete_fields)
    quote = connection.ops.quote_name

    def table(model):
        return quote(model._meta.db_table)

    def column(model, name):
        return quote(model._meta.get_field(name).column)

    user_columns = ", ".join(f"u.{quote(field.column)}" for field in user_fields)
    sql = (
        f"SELECT s.{column(Session, 'session_data')}, p.{column(Project, 'id')}, p.{column(Project, 'name')}, "
        f"p.{column(Project, 'k8s_name')}, sb.{column(Sandbox, 'id')}, sb.{column(Sandbox, 'name')}, "
        f"sb.{column(Sandbox, 'status')}, sb.{column(Sandbox, 'k8s_namespace')}, sb.{column(Sandbox, 'runtime_state')}, "
        f"(SELECT e.{column(Environment, 'value')} FROM {table(Environment)} e "
        f"WHERE e.{column(Environment, 'project')} = p.{column(Project, 'id')} AND e.{column(Environment, 'key')} = %s LIMIT 1), "
        f"(SELECT c.{column(UserConfig, 'value')} FROM {table(UserConfig)} c "
        f"WHERE c.{column(UserConfig, 'user')} = p.{column(Project, 'user')} AND c.{column(UserConfig, 'key')} = %s "
        f"AND %s LIMIT 1), "
        f"{user_columns} "
        f"FROM {table(Session)} s "
        f"JOIN {table(Project)} p ON p.{column(Project, 'id')} = %s AND p.{column(Project, 'status')} <> %s "
        f"JOIN {table(user_model)} u ON u.{quote(user_model._meta.pk.column)} = p.{column(Project, 'user')} "
        f"LEFT JOIN {table(Sandbox)} sb ON sb.{column(Sandbox, 'project')} = p.{column(Project, 'id')} "
        f"AND sb.{column(Sandbox, 'status')} <> %s "
        f"WHERE s.{column(Session, 'session_key')} = %s AND s.{column(Session, 'expire_date')} > %s"
    )
    return sql, user_fields


@functools.cache
def _audit_insert_sql() -> str:
    quote = connection.ops.quote_name
    fields = [TerminalSession._meta.get_field(name) for name in (
        "sandbox", "user", "session_name", "client_address", "started", "bytes_from_browser", "bytes_to_browser",
    )]
    return (
        f"INSERT INTO {quote(TerminalSession._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES (%s, %s, %s, %s, %s, 0, 0) RETURNING {quote(TerminalSession._meta.pk.column)}"
    )


@functools.cache
def _audit_close_sql() -> str:
    quote = connection.ops.quote_name
    table = quote(TerminalSession._meta.db_table)
    ended, sent, received, code, pk = (
        quote(TerminalSession._meta.get_field(name).column)
        for name in ("ended", "bytes_from_browser", "bytes_to_browser", "close_code", "id")
    )
    return (
        f"UPDATE {table} SET {ended} = %s, {sent} = {sent} + %s, {received} = {received} + %s, {code} = %s "
        f"WHERE {pk} = %s AND {ended} IS NULL"
    )


def _session_user_is(session, owner) -> bool:
    """Whether the session is signed in as ``owner`` by the rules of Django's get_user (a listed
    backend that lets the user in, the session's auth hash equal to the user's current one).
    False sends the caller to the general path, which then gives the exact answer (and does what
    Django does with a stale session: a hash from a fallback secret is renewed, any other flushed)."""
    try:
        user_id = owner._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
        session_hash = session.get(HASH_SESSION_KEY)
    except (KeyError, ValidationError):
        return False
    if user_id != owner.pk or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return False
    backend = load_backend(backend_path)
    if not isinstance(backend, ModelBackend) or not backend.user_can_authenticate(owner):
        return False
    return bool(session_hash) and constant_time_compare(session_hash, owner.get_session_auth_hash())


def _admit_in_one_query(session, project_id: int, session_name: str, client_address: str):
    """(user, admission) when the session's user owns the project, read in one query; None when
    the general path must decide (no such session or project, someone else's project, an unusual
    session). Refusals it is sure of (the owner's sandbox not RUNNING, its terminal unreachable)
    are raised as the general path raises them."""
    session_key = getattr(session, "session_key", None)
    if not session_key or settings.SESSION_ENGINE not in _SESSIONS_IN_THE_DATABASE:
        return None
    kubernetes = settings.SANDBOX_BACKEND == "kubernetes"
    sql, user_fields = _admission_statement()
    with connection.cursor() as cursor:
        cursor.execute(sql, [
            TERMINAL_TOKEN_KEY, ConfigKey.KUBECONFIG, kubernetes, project_id, ProjectStatus.TERMINATED,
            ResourceStatus.TERMINATED, session_key, timezone.now(),
        ])
        row = cursor.fetchone()
    if row is None:
        return None
    (session_data, project_pk, project_name, project_k8s_name, sandbox_pk, sandbox_name, sandbox_status,
     namespace, runtime_state, token, kubeconfig, *user_values) = row
    owner = get_user_model().from_db(
        connection.alias, [field.attname for field in user_fields],
        [_from_db(field, value) for field, value in zip(user_fields, user_values)],
    )
    # The session's data as its store would load it (the same row, the same decoding), kept on the
    # session object: the relay's later checks read it from there.
    session._session_cache = session.decode(session_data)
    if not _session_user_is(session, owner):
        return None
    if sandbox_pk is None or sandbox_status != ResourceStatus.RUNNING:
        raise TerminalRefused(CLOSE_NOT_RUNNING, f"The sandbox is {sandbox_status or 'missing'}, not RUNNING.")
    spec = terminal_spec_of(
        sandbox_id=sandbox_pk, name=sandbox_name, namespace=namespace,
        runtime_state=_from_db(Sandbox._meta.get_field("runtime_state"), runtime_state),
        project_id=project_pk, project_name=project_name, project_k8s_name=project_k8s_name, user_id=owner.pk,
        token=_from_db(Environment._meta.get_field("value"), token),
        kubeconfig=_from_db(UserConfig._meta.get_field("value"), kubeconfig),
    )
    try:
        upstream = get_sandbox_backend().terminal_upstream(spec)
    except BackendError as error:
        raise TerminalRefused(CLOSE_UPSTREAM_GONE, str(error)) from error
    with connection.cursor() as cursor:
        cursor.execute(_audit_insert_sql(), [sandbox_pk, owner.pk, session_name, client_address[:64], timezone.now()])
        audit_pk = cursor.fetchone()[0]
    note_activity(sandbox_pk)
    return owner, TerminalAdmission(terminal_session_id=audit_pk, upstream=upstream, sandbox_id=sandbox_pk)


def _from_db(field, value):
    """A column's value as the ORM would give it (decrypted, JSON decoded)."""
    if value is None or not hasattr(field, "from_db_value"):
        return value
    return field.from_db_value(value, None, connection)


def terminal_lapsed(user_id: int, session, project_id: int) -> int | None:
    """Why an open terminal must close now, as its close code; None while its user may keep it.

    Checked while the terminal is open (the consumer asks every TERMINAL_RECHECK_SECONDS): a
    terminal admitted once kept working after its user signed out (issue 14). The session is read
    again from its store as Django's own get_user does, so signing out (the session is deleted),
    a password change (the session's hash no longer matches; django.contrib.auth flushes it) and an
    expired session all end the terminal with 4401; a project deleted or given to another user
    ends it with 4404.
    """
    if session is None or not session.session_key:
        return CLOSE_NOT_SIGNED_IN
    request = SimpleNamespace(session=import_module(settings.SESSION_ENGINE).SessionStore(session.session_key))
    if get_user(request).pk != user_id:
        return CLOSE_NOT_SIGNED_IN
    if not Project.objects.visible().filter(pk=project_id, user_id=user_id).exists():
        return CLOSE_NOT_FOUND
    return None


def do_finish_terminal(terminal_session_id: int, *, bytes_from_browser: int, bytes_to_browser: int, close_code: int):
    """Closes the audit entry once, when the connection ends (never per frame: the relay stays lean)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _audit_close_sql(), [timezone.now(), bytes_from_browser, bytes_to_browser, close_code, terminal_session_id]
        )
    if close_code == CLOSE_UPSTREAM_GONE:
        # The relay saw the terminal server go away: the next scan (a few seconds) looks at the
        # sandbox, rather than the next drift check, so its status does not say RUNNING for long.
        mark_due(Sandbox.objects.filter(terminal_sessions__pk=terminal_session_id, status=ResourceStatus.RUNNING))


# --- uploads -------------------------------------------------------------------------------------

# The page sends files in chunks of this size (5 MiB, as the original's resumable upload); it is also
# the upload endpoint's request-body limit (fullstackagent.request_limits).
UPLOAD_CHUNK_BYTES = settings.TERMINAL_UPLOAD_CHUNK_BYTES
UPLOAD_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{8,64}")
# Staged uploads nobody continued for this long (a closed tab) are removed: when the user starts
# another upload, and by the periodic clean-up (projects.tasks.remove_stale_uploads).
STALE_UPLOAD_SECONDS = settings.TERMINAL_UPLOAD_STALE_SECONDS


class UploadRefused(Exception):
    """An upload the view answers with ``status`` and this message; nothing was written to the sandbox."""

    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.extra = extra


@dataclass(frozen=True)
class UploadProgress:
    received: int  # bytes staged so far (the next chunk's offset)
    path: str = ""  # where the file landed in the sandbox, once complete


def valid_upload_name(name: str) -> str:
    """A plain file name: it lands in the shell's directory, never elsewhere.

    Refuses anything that could name another directory (separators, `.`/`..`, absolute names) and
    control characters that would mislead the user when the path is pasted into the shell.
    """
    if not name or name in (".", "..") or len(name.encode()) > 255:
        raise UploadRefused(400, "That file name is not allowed.")
    if "/" in name or "\\" in name or any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise UploadRefused(400, "A file name cannot contain slashes or control characters.")
    return name


def uploads_root() -> Path:
    return Path(settings.STATE_DIR) / "uploads"


def upload_staging_dir(user_id: int, project_id: int) -> Path:
    return uploads_root() / str(user_id) / str(project_id)


def _remove_stale_uploads(pattern: str) -> int:
    """Removes the staged parts matching ``pattern`` (under the uploads folder) that nobody has
    added to for STALE_UPLOAD_SECONDS; returns how many."""
    cutoff = time.time() - STALE_UPLOAD_SECONDS
    removed = 0
    for staged in uploads_root().glob(pattern):
        try:
            if staged.stat().st_mtime < cutoff:
                staged.unlink()
                removed += 1
        except FileNotFoundError:
            pass  # finished or removed by another process meanwhile
    return removed


def remove_stale_uploads() -> int:
    """Every user's abandoned uploads (the periodic clean-up)."""
    return _remove_stale_uploads("*/*/*.part")


@contextmanager
def _user_uploads_locked(user_id: int):
    """One upload start at a time per user, across the web processes, so two starting together
    cannot both pass the cap on unfinished uploads."""
    folder = uploads_root() / str(user_id)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _start_upload(user_id: int, staged: Path) -> None:
    """Makes room for a new upload (offset 0), refused while the user has as many unfinished ones
    as TERMINAL_UPLOADS_UNFINISHED_MAX: each may announce up to TERMINAL_UPLOAD_MAX_BYTES."""
    with _user_uploads_locked(user_id):
        _remove_stale_uploads(f"{user_id}/*/*.part")
        staged.unlink(missing_ok=True)
        unfinished = len(list((uploads_root() / str(user_id)).glob("*/*.part")))
        if unfinished >= settings.TERMINAL_UPLOADS_UNFINISHED_MAX:
            raise UploadRefused(
                429,
                f"You have {unfinished} unfinished uploads; let them finish (or wait "
                f"{STALE_UPLOAD_SECONDS // 60} minutes after one stopped) before starting another.",
            )
        staged.touch()


def running_sandbox_for_upload(user, project_id: int) -> Sandbox:
    project = owned_project(user, project_id)
    if project is None:
        raise UploadRefused(404, "No such project.")
    sandbox = project_sandbox(project)
    if sandbox is None or sandbox.status != ResourceStatus.RUNNING:
        raise UploadRefused(409, "The sandbox is not running; start the project first.")
    return sandbox


def do_receive_upload_chunk(
    user,
    project_id: int,
    *,
    session_name: str | None,
    upload_id: str,
    filename: str,
    total_size: int | str,
    offset: int | str,
    chunk,
) -> UploadProgress:
    """Stages one chunk of a file; with the last one, writes the file into the shell's directory.

    Chunks are staged on the platform (not appended in the sandbox) so the backend interface needs
    only "write this whole file", which both backends can do atomically: a half-sent file never
    appears in the user's workspace. A chunk whose offset differs from what is staged is refused
    with the staged size, so the browser resumes from there after a lost connection.
    """
    sandbox = running_sandbox_for_upload(user, project_id)
    try:
        session_name = valid_session_name(session_name)
    except TerminalRefused as refusal:
        raise UploadRefused(400, str(refusal))
    filename = valid_upload_name(filename)
    total_size, offset = _whole_number(total_size, "size"), _whole_number(offset, "offset")
    if not UPLOAD_ID_PATTERN.fullmatch(upload_id or ""):
        raise UploadRefused(400, "Missing or malformed upload id.")
    if total_size > settings.TERMINAL_UPLOAD_MAX_BYTES:
        raise UploadRefused(413, f"Files of at most {settings.TERMINAL_UPLOAD_MAX_BYTES // (1024 * 1024)} MB can be uploaded.")
    staging = upload_staging_dir(user.pk, project_id)
    staging.mkdir(parents=True, exist_ok=True)
    staged = staging / f"{upload_id}.part"
    if offset == 0:
        _start_upload(user.pk, staged)
    received = staged.stat().st_size if staged.exists() else 0
    if offset != received:
        raise UploadRefused(409, "The chunk does not continue the upload.", offset=received)
    with open(staged, "ab") as handle:
        while True:
            piece = chunk.read(1024 * 1024)
            if not piece:
                break
            received += len(piece)
            if received - offset > UPLOAD_CHUNK_BYTES or received > total_size:
                handle.truncate(offset)
                raise UploadRefused(413, "The chunk is larger than announced.", offset=offset)
            handle.write(piece)
    if received < total_size:
        return UploadProgress(received=received)
    return UploadProgress(received=received, path=_deliver_upload(sandbox, session_name, filename, staged))


def _whole_number(value, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UploadRefused(400, f"The {name} parameter must be a whole number.")
    if number < 0:
        raise UploadRefused(400, f"The {name} parameter cannot be negative.")
    return number


def _deliver_upload(sandbox: Sandbox, session_name: str, filename: str, staged: Path) -> str:
    """Hands the staged file to the backend, into the named terminal's current directory."""
    backend = get_sandbox_backend()
    spec = build_spec(sandbox)
    try:
        directory = backend.terminal_cwd(spec, session_name)
        with open(staged, "rb") as content:
            return _path_in_sandbox(backend, spec, backend.upload_file(spec, directory, filename, content))
    except BackendError as error:
        # The backend's confinement checks (workspace, symlinks) end up here with a user-facing message.
        raise UploadRefused(400, str(error)) from error
    finally:
        staged.unlink(missing_ok=True)


def _path_in_sandbox(backend, spec, delivered: str) -> str:
    """The uploaded file's path as the sandbox's shell names it, never the platform's own path.

    Backends answer with the path as the sandbox sees it; one whose shells' $HOME it can name (the
    local one: ``home(spec)``) is shown relative to it (``~/dir/file``), as a user would type it.
    """
    home = getattr(backend, "home", None)
    if home is None:
        return delivered
    try:
        return f"~/{PurePosixPath(delivered).relative_to(home(spec))}"
    except ValueError:
        return delivered