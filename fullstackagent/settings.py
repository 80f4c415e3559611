"""Settings for FullstackAgent, read from the environment (see README "Configuration").

With nothing configured the platform runs in development mode on the embedded PostgreSQL and Redis
under the state folder. Production sets DEBUG=false, SECRET_KEY, FIELD_ENCRYPTION_KEYS, ALLOWED_HOSTS,
DATABASE_URL and REDIS_URL; missing ones stop the process with a message naming them.
"""

import ipaddress
import re
import secrets
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from fullstackagent.config import (
    database_from_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(env_str("STATE_DIR") or BASE_DIR / ".state").resolve()

DEBUG = env_bool("DEBUG", True)


def _development_secret(name: str, length: int = 50) -> str:
    """A random secret kept in the state folder, so a laptop needs no configuration but
    sessions and encrypted values survive a restart. Refused outside DEBUG."""
    if not DEBUG:
        raise ImproperlyConfigured(f"{name} must be set when DEBUG is false")
    path = STATE_DIR / "secrets" / name.lower()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(length))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY") or _development_secret("SECRET_KEY")

# Fernet keys (urlsafe base64 of 32 bytes), comma separated; the first encrypts, all decrypt, so a
# new key is rotated in by putting it first and running `manage.py rotate_encryption_keys`.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", [])
if not FIELD_ENCRYPTION_KEYS:
    from cryptography.fernet import Fernet

    _key_file = STATE_DIR / "secrets" / "field_encryption_key"
    if not DEBUG:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must be set when DEBUG is false")
    if not _key_file.exists():
        _key_file.parent.mkdir(parents=True, exist_ok=True)
        _key_file.write_text(Fernet.generate_key().decode())
        _key_file.chmod(0o600)
    FIELD_ENCRYPTION_KEYS = [_key_file.read_text().strip()]

# The platform's address as users open it (e.g. https://agent.example.com), for links that leave a
# page: the sandbox's welcome links to the settings. `make run` sets it to the address it serves.
PUBLIC_URL = (env_str("PUBLIC_URL") or "").rstrip("/")
# Previews (previews/): each project's app is served at <label>.<PREVIEW_DOMAIN>, an origin of its own
# that never shares cookies with the platform's. `*.localhost` resolves to this machine in browsers,
# so the default works for `make run`; in production, a wildcard DNS record and ingress for a domain
# that is not a subdomain of the platform's (as githubusercontent.com is not github.com's).
PREVIEW_DOMAIN = (env_str("PREVIEW_DOMAIN") or "preview.localhost").strip(".").lower()
# The scheme and port previews are opened with; by default PUBLIC_URL's (the same server serves both).
PREVIEW_SCHEME = env_str("PREVIEW_SCHEME") or (PUBLIC_URL.split("://", 1)[0] if "://" in PUBLIC_URL else "http")
PREVIEW_PORT = env_str("PREVIEW_PORT") or (
    PUBLIC_URL.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    if "://" in PUBLIC_URL and ":" in PUBLIC_URL.split("://", 1)[1].split("/", 1)[0]
    else ""
)
# How long the preview's own cookie lets its owner (or a share link's visitor) in.
PREVIEW_COOKIE_MAX_AGE_SECONDS = env_int("PREVIEW_COOKIE_MAX_AGE_SECONDS", 12 * 3600, minimum=60)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from static files: the docs work offline
    "channels",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "identities",
    "projects",
    "sandboxes",
    "databases",
    "aiproxy",
    "previews",
]
# `manage.py runserver` serves the ASGI application (websockets included) with daphne's runserver,
# for development; production runs fullstackagent.server.serve. Only for that command: daphne's app
# imports Twisted and installs its reactor when loaded, a quarter of a second of the start of every
# web process, Celery worker and management command that has no use for it.
if sys.argv[1:2] == ["runserver"]:
    INSTALLED_APPS.insert(0, "daphne")

MIDDLEWARE = [
    # Outermost: HTTP latency by route is timed around everything else, 503s and redirects included.
    "fullstackagent.metrics.RequestLatencyMiddleware",
    # First: a request that failed because PostgreSQL is unreachable answers 503 (issue 13).
    "fullstackagent.availability.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The Content-Security-Policy of every response (CONTENT_SECURITY_POLICY below, built once).
    "fullstackagent.content_security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # NUL characters and unreadable bodies get a 4xx before any view or query (issue 14).
    "fullstackagent.middleware.BadInputMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Django's, with its storage made only for requests that add or show a message.
    "fullstackagent.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # After XFrameOptionsMiddleware: lets the Sealos desktop (only) frame the app.
    "identities.middleware.SealosFramingMiddleware",
    # A view's 404 is the site's own page, also with DEBUG on (fullstackagent.site_pages).
    "fullstackagent.site_pages.NotFoundPageMiddleware",
]

ROOT_URLCONF = "fullstackagent.urls"
# Every path resolves (fullstackagent.urls ends with catch-alls), so CommonMiddleware's look for
# "<path>/" could never redirect and only cost each 404 a second resolution: the catch-all page
# route sends a page's path without its slash to the page itself (site_pages.unknown_path).
APPEND_SLASH = False
WSGI_APPLICATION = None
ASGI_APPLICATION = "fullstackagent.asgi.application"
# Threads each server process runs Django's request handling on (fullstackagent.threaded_http).
HTTP_THREADS = env_int("HTTP_THREADS", 2, minimum=1)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "fullstackagent.context_processors.platform",
            ],
        },
    },
]


def _embedded_database_url() -> str:
    """The URL `python -m fullstackagent.devtools.embedded up` wrote; it starts the server first."""
    url_file = STATE_DIR / "postgres" / "url"
    if url_file.exists():
        return url_file.read_text().strip()
    # Not started yet: a URL that fails on first use with a message pointing at the fix.
    return "postgresql://not-started:run-make-run@127.0.0.1:1/embedded-postgres-not-started"


DATABASE_URL = env_str("DATABASE_URL") or _embedded_database_url()
DATABASES = {"default": database_from_url(DATABASE_URL)}
# Test runs sharing one server each use their own test database (set by fullstackagent.testing.plugin).
DATABASES["default"]["TEST"] = {"NAME": env_str("DATABASE_TEST_NAME")}
# Under ASGI each request's sync code runs on a fresh thread, so thread-bound persistent connections
# are never reused: every request paid a new PostgreSQL connection (SCRAM authentication and a
# backend fork, most of a create-project request). A process-wide pool (psycopg_pool) lends them
# instead; Django wants CONN_MAX_AGE 0 with it. 0 turns the pool off.
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 20, minimum=0)
# Issue 13: how long a request waits for a pooled connection before it answers 503 (PostgreSQL
# down must cost a second, not ten); connections idle for a moment are checked when lent (a PostgreSQL restart
# leaves broken ones in the pool), and new ones give up after libpq's minimum of 2 s.
DATABASE_POOL_TIMEOUT_SECONDS = env_float("DATABASE_POOL_TIMEOUT_SECONDS", 1.0, minimum=0.1)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 2)
# A client that vanishes mid-transaction (a worker SIGKILLed, its host gone) must not hold its row
# locks until TCP notices, hours later: PostgreSQL ends a session idle in a transaction this long.
# The platform's transactions are short (a claim, a result, a request); 0 turns the limit off.
DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS = env_int("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", 60, minimum=0)
if DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS:
    DATABASES["default"]["OPTIONS"]["options"] = " ".join(
        filter(None, [
            DATABASES["default"]["OPTIONS"].get("options", ""),
            f"-c idle_in_transaction_session_timeout={DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS}s",
        ])
    )
if DATABASE_POOL_MAX_SIZE:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1, "max_size": DATABASE_POOL_MAX_SIZE, "timeout": DATABASE_POOL_TIMEOUT_SECONDS
    }
# Django's backend, but the pool checks only the connections that sat idle, not one a request gave
# back a moment ago (a round trip a request saved; fullstackagent.db_pool), and timestamps are read
# by psycopg's C loader (fullstackagent.postgresql.base).
DATABASES["default"]["ENGINE"] = "fullstackagent.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _embedded_redis_url() -> str:
    """The embedded Redis's URL, password included (fullstackagent.devtools.embedded writes both files)."""
    port_file, password_file = STATE_DIR / "redis" / "port", STATE_DIR / "redis" / "password"
    port = port_file.read_text().strip() if port_file.exists() else "6379"
    password = password_file.read_text().strip() if password_file.exists() else ""
    return f"redis://:{password}@127.0.0.1:{port}/0" if password else f"redis://127.0.0.1:{port}/0"


REDIS_URL = env_str("REDIS_URL") or _embedded_redis_url()

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "fsa",
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.db"

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Django's default list (PBKDF2 first) unless set: the test suite sets the MD5 hasher here, as
# healthchecks does, so the processes it starts (web server, Celery) hash fast too. Never in production.
PASSWORD_HASHERS = env_list(
    "PASSWORD_HASHERS",
    [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
        "django.contrib.auth.hashers.ScryptPasswordHasher",
    ],
)
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Front-end packages installed by npm (package.json); served as /static/vendor/<package>/... Only
# these: node_modules also holds the Claude Code CLI for local sandboxes, which is no static file.
NODE_MODULES_DIR = BASE_DIR / "node_modules"
FRONTEND_PACKAGES = ("@xterm", "htmx.org", "@fontsource")
for _package in FRONTEND_PACKAGES:
    if (NODE_MODULES_DIR / _package).exists():
        STATICFILES_DIRS.append((f"vendor/{_package}", NODE_MODULES_DIR / _package))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# In development (no collectstatic) WhiteNoise serves straight from the finders, node_modules included.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
# Django 6 behaviour now: URL fields without a scheme mean https.
FORMS_URLFIELD_ASSUME_HTTPS = True

SITE_ID = 1
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# --- sign-in methods -----------------------------------------------------------------------------
ENABLE_PASSWORD_AUTH = env_bool("ENABLE_PASSWORD_AUTH", True)
ENABLE_GITHUB_AUTH = env_bool("ENABLE_GITHUB_AUTH", False)
ENABLE_SEALOS_AUTH = env_bool("ENABLE_SEALOS_AUTH", False)
GITHUB_CLIENT_ID = env_str("GITHUB_CLIENT_ID", "")
GITHUB_CLIENT_SECRET = env_str("GITHUB_CLIENT_SECRET", "")
SEALOS_JWT_SECRET = env_str("SEALOS_JWT_SECRET", "")
# Origins of the Sealos desktop (e.g. https://cloud.sealos.io) allowed to frame the Sealos sign-in
# page and to answer its request for the session; empty: the page cannot be framed.
SEALOS_DESKTOP_ORIGINS = env_list("SEALOS_DESKTOP_ORIGINS", [])
if ENABLE_GITHUB_AUTH and not (GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET):
    raise ImproperlyConfigured("ENABLE_GITHUB_AUTH needs GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET")
if ENABLE_SEALOS_AUTH and not SEALOS_JWT_SECRET:
    raise ImproperlyConfigured("ENABLE_SEALOS_AUTH needs SEALOS_JWT_SECRET")

ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_ADAPTER = "identities.adapters.AccountAdapter"
ACCOUNT_SESSION_REMEMBER = True
ACCOUNT_LOGOUT_ON_GET = False
# Repeated failed sign-ins: allauth counts failures per account and per IP in the cache (Redis).
ACCOUNT_RATE_LIMITS = {
    "login_failed": env_str("LOGIN_FAILED_RATE_LIMIT", "5/5m/ip,5/5m/key"),
    "signup": env_str("SIGNUP_RATE_LIMIT", "20/h/ip"),
}
# Behind a reverse proxy every request comes from the proxy's address, so the per-address limit
# would lock out everyone at once; with N trusted proxies allauth takes the client address from
# X-Forwarded-For. Leave 0 when clients reach the web server directly (the header could be forged).
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
SOCIALACCOUNT_ADAPTER = "identities.adapters.SocialAccountAdapter"
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_PROVIDERS = {
    "github": {
        "SCOPE": ["repo", "read:user"],
        # Our subclass reads GITHUB_OAUTH_BASE_URL / GITHUB_API_BASE_URL per request (allauth's
        # own fixes github.com at import) and 404s while ENABLE_GITHUB_AUTH is off.
        "provider_class": "identities.github.provider.GitHubProvider",
        "APP": {"client_id": GITHUB_CLIENT_ID, "secret": GITHUB_CLIENT_SECRET, "key": ""},
    }
}
GITHUB_OAUTH_BASE_URL = env_str("GITHUB_OAUTH_BASE_URL", "https://github.com")
GITHUB_API_BASE_URL = env_str("GITHUB_API_BASE_URL", "https://api.github.com")

# --- reconciliation and backends -----------------------------------------------------------------
SANDBOX_BACKEND = env_choice("SANDBOX_BACKEND", "local", ("local", "kubernetes"))
RECONCILE_INTERVAL_SECONDS = env_float("RECONCILE_INTERVAL_SECONDS", 3.0, minimum=0.1)
# A step renews its lease every third of this while it runs (fullstackagent.reconcile.LeaseHeartbeat),
# so it is short: a killed worker's rows are taken up again this many seconds later.
RECONCILE_LEASE_SECONDS = env_int("RECONCILE_LEASE_SECONDS", 10, minimum=2)
# How often a RUNNING resource is observed for drift (a process or pod that went away).
RECONCILE_DRIFT_CHECK_SECONDS = env_float("RECONCILE_DRIFT_CHECK_SECONDS", 10.0, minimum=1.0)
RECONCILE_MAX_RETRIES = env_int("RECONCILE_MAX_RETRIES", 8, minimum=1)
RECONCILE_SCAN_BATCH = env_int("RECONCILE_SCAN_BATCH", 500, minimum=1)
# Issue 13 (resilience): a transitional status older than this ends in ERROR (Kubernetes'
# progressDeadlineSeconds has the same default); drift restarts in a row before ERROR, and how long
# a resource must have run fine for the count to start again (the kubelet's 10 minutes).
RECONCILE_PROGRESS_DEADLINE_SECONDS = env_int("RECONCILE_PROGRESS_DEADLINE_SECONDS", 600, minimum=10)
RECONCILE_CRASH_LOOP_LIMIT = env_int("RECONCILE_CRASH_LOOP_LIMIT", 5, minimum=1)
RECONCILE_CRASH_LOOP_RESET_SECONDS = env_int("RECONCILE_CRASH_LOOP_RESET_SECONDS", 600, minimum=1)

# Local backend: workspaces and ttyd processes under the state folder; databases on the server that
# LOCAL_DATABASE_ADMIN_URL names (default: the platform's own server).
LOCAL_SANDBOX_ROOT = Path(env_str("LOCAL_SANDBOX_ROOT") or STATE_DIR / "sandboxes").resolve()
LOCAL_DATABASE_ADMIN_URL = env_str("LOCAL_DATABASE_ADMIN_URL") or DATABASE_URL
# Put before every local project database and role name: a test run gives its own (t<random>_) and
# drops what carries it when it ends, so runs sharing a server neither meet nor leave databases.
LOCAL_DATABASE_NAME_PREFIX = env_str("LOCAL_DATABASE_NAME_PREFIX", "")
if not re.fullmatch(r"[a-z][a-z0-9_]{0,15}|", LOCAL_DATABASE_NAME_PREFIX):
    raise ImproperlyConfigured(
        "LOCAL_DATABASE_NAME_PREFIX is a lowercase letter then up to 15 lowercase letters, digits or underscores"
    )
TTYD_BINARY = env_str("TTYD_BINARY", "")
# Local sandboxes run in bubblewrap namespaces as uid LOCAL_SANDBOX_UID_BASE + sandbox id, with
# cgroup limits (sandboxes/backends/isolation.py). `off`: unisolated, as the platform's own user; for
# one developer on their own machine only.
LOCAL_SANDBOX_ISOLATION = env_choice("LOCAL_SANDBOX_ISOLATION", "bubblewrap", ("bubblewrap", "off"))
LOCAL_SANDBOX_UID_BASE = env_int("LOCAL_SANDBOX_UID_BASE", 200_000, minimum=1000, maximum=2**31 - 2**24)
# The pod's limits (sandboxes/kubernetes/manifests.py): 4 GiB, 2 CPUs.
LOCAL_SANDBOX_MEMORY_MB = env_int("LOCAL_SANDBOX_MEMORY_MB", 4096, minimum=64)
LOCAL_SANDBOX_CPUS = env_float("LOCAL_SANDBOX_CPUS", 2.0, minimum=0.1)
LOCAL_SANDBOX_MAX_PROCESSES = env_int("LOCAL_SANDBOX_MAX_PROCESSES", 1024, minimum=16)
LOCAL_SANDBOX_TMP_MB = env_int("LOCAL_SANDBOX_TMP_MB", 1024, minimum=16)
# The Claude Code CLI given to local sandboxes; default: the native binary npm installed for
# package.json's @anthropic-ai/claude-code.
CLAUDE_CODE_BINARY = env_str("CLAUDE_CODE_BINARY", "")

# Default per-user limits (an operator overrides them per user in the admin: identities.UserQuota).
# 0 for a count means none allowed.
QUOTA_PROJECTS = env_int("QUOTA_PROJECTS", 20, minimum=0)
QUOTA_RUNNING_SANDBOXES = env_int("QUOTA_RUNNING_SANDBOXES", 5, minimum=0)
QUOTA_SANDBOX_CPU = env_str("QUOTA_SANDBOX_CPU", "2")  # the pod's CPU limit on Kubernetes
QUOTA_SANDBOX_MEMORY = env_str("QUOTA_SANDBOX_MEMORY", "4Gi")  # the pod's memory limit on Kubernetes
# A RUNNING sandbox with no terminal traffic, no preview traffic and no agent working for this many
# minutes is stopped (sandboxes.idle); a user's own value (Settings, or identities.UserQuota in the
# admin) wins. 0: never. A float so tests can use seconds; users set whole minutes.
IDLE_STOP_MINUTES = env_float("IDLE_STOP_MINUTES", 60.0, minimum=0.0)

# Kubernetes backend.
KUBERNETES_INGRESS_DOMAIN = env_str("KUBERNETES_INGRESS_DOMAIN", "")
KUBERNETES_RUNTIME_IMAGE = env_str("KUBERNETES_RUNTIME_IMAGE", "ghcr.io/fullstackagent/runtime:0.1.0")
KUBERNETES_TERMINAL_UPSTREAM = env_choice("KUBERNETES_TERMINAL_UPSTREAM", "ingress", ("service", "ingress"))
# Read timeout of one Kubernetes API call (connect: at most 5 s); the reconcile engine retries.
KUBERNETES_REQUEST_TIMEOUT_SECONDS = env_float("KUBERNETES_REQUEST_TIMEOUT_SECONDS", 10.0, minimum=0.1)

# Aiproxy (Sealos users get an Anthropic key at sign-in).
AIPROXY_ENDPOINT = env_str("AIPROXY_ENDPOINT", "")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL", "")
AIPROXY_TIMEOUT_SECONDS = env_float("AIPROXY_TIMEOUT_SECONDS", 5.0, minimum=0.1)

# --- Celery --------------------------------------------------------------------------------------
# Celery's line per task received and finished (fullstackagent/celery.py); INFO shows them again.
WORKER_TASK_LOG_LEVEL = env_choice("WORKER_TASK_LOG_LEVEL", "WARNING", ("DEBUG", "INFO", "WARNING", "ERROR"))
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Issue 13: messages are acked when a task starts, and short rechecks are published when due
# (fullstackagent.requeue), never parked in the worker as countdown messages. A Redis restart then
# finds no unacknowledged message to restore: kombu's restore on a connection closed by the loss
# reaches a transport already detached (`_connparams` → AttributeError on None.hostname), which
# Celery treats as unrecoverable and exits. A message lost with a dead worker costs nothing: the
# row's lease and next_check_at make the beat's scan queue it again.
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Reconnect to the broker forever (Celery's default gives up after 100 tries and exits).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# kombu's Redis transport with a guard against the crash above (fullstackagent.broker).
if REDIS_URL.split("://", 1)[0] in ("redis", "rediss"):
    CELERY_BROKER_TRANSPORT = "fullstackagent.broker:Transport"
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "fullstackagent")
CELERY_BEAT_SCHEDULE = {
    "reconcile-scan": {
        "task": "projects.tasks.scan_resources",
        "schedule": RECONCILE_INTERVAL_SECONDS,
        "options": {"expires": RECONCILE_INTERVAL_SECONDS},
    },
}

# --- REST framework ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # The token class comes first: its challenge makes an anonymous request a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "identities.tokens.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every error as {message, code, fields?} (fullstackagent.exceptions).
    "EXCEPTION_HANDLER": "fullstackagent.exceptions.api_exception_handler",
    # DRF's parsers, JSON's answering a too deeply nested body with 400 (fullstackagent.parsers).
    "DEFAULT_PARSER_CLASSES": [
        "fullstackagent.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # An Accept header nothing satisfies gets JSON, not an undocumented 406 (fullstackagent.negotiation).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "fullstackagent.negotiation.JSONWhenUnsatisfiable",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "FullstackAgent API",
    "DESCRIPTION": "Projects, their sandboxes, databases and environment, and user settings.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Separate request and response components, so read-only fields are not asked for in requests.
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- security ------------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# The container healthcheck calls /healthz over plain HTTP on 127.0.0.1 (fullstackagent.health).
# Prometheus scrapes /metrics the same way, over plain HTTP on a private address (README "Metrics").
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Largest file a user can drop onto the terminal (sent in 5 MB chunks; see sandboxes.terminal).
TERMINAL_UPLOAD_MAX_BYTES = env_int("TERMINAL_UPLOAD_MAX_BYTES", 1024 * 1024 * 1024, minimum=1)

# --- limits on hostile input (issue 14; README "Limits and security") ----------------------------
# Largest request body on any path, refused with 413 before it is read (fullstackagent.request_limits).
# The largest legitimate body is a kubeconfig (256 KiB) or a page of variables; 2 MiB leaves room.
REQUEST_BODY_MAX_BYTES = env_int("REQUEST_BODY_MAX_BYTES", 2 * 1024 * 1024, minimum=64 * 1024)
# The terminal's upload endpoint takes one raw chunk of a file per request: its own, larger limit,
# and the chunk size the page sends.
TERMINAL_UPLOAD_CHUNK_BYTES = env_int("TERMINAL_UPLOAD_CHUNK_BYTES", 5 * 1024 * 1024, minimum=64 * 1024)
# Django's own limit on a parsed form or JSON body, kept equal to the limit in front of it.
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES
# Error pages and reports mask passwords inside URLs and every configured secret (DATABASE_URL...).
DEFAULT_EXCEPTION_REPORTER = "fullstackagent.error_reports.CredentialMaskingReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "fullstackagent.error_reports.CredentialMaskingFilter"
# Unfinished terminal uploads a user may have at once, and how long one nobody continues is kept
# (sandboxes.terminal; removed every 10 minutes by the beat).
TERMINAL_UPLOADS_UNFINISHED_MAX = env_int("TERMINAL_UPLOADS_UNFINISHED_MAX", 3, minimum=1)
TERMINAL_UPLOAD_STALE_SECONDS = env_int("TERMINAL_UPLOAD_STALE_SECONDS", 3600, minimum=60)
CELERY_BEAT_SCHEDULE["remove-stale-uploads"] = {
    "task": "projects.tasks.remove_stale_uploads",
    "schedule": 600.0,
    "options": {"expires": 600.0},
}
# A strict Content-Security-Policy on every response (django-csp): scripts only from this site's
# own files (no inline script, no eval), nothing framed, no plugins. Styles allow 'unsafe-inline':
# xterm.js and Swagger UI add <style> elements of their own at run time, which no nonce reaches.
# Websockets to the same host are 'self' (CSP 3). A form may post to this site only, and to
# GitHub's sign-in when that is on (allauth's POST redirects there; Chromium checks redirects).
# The Sealos desktop may frame the app (identities.middleware replaces frame-ancestors).
_FORM_ACTIONS = ["'self'"]
if ENABLE_GITHUB_AUTH:
    _FORM_ACTIONS.append(GITHUB_OAUTH_BASE_URL.rstrip("/"))
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": _FORM_ACTIONS,
        "frame-ancestors": ["'none'"],
        # The preview pane beside the terminal frames the project's app, on its own origin.
        "frame-src": ["'self'", f"{PREVIEW_SCHEME}://*.{PREVIEW_DOMAIN}" + (f":{PREVIEW_PORT}" if PREVIEW_PORT else "")],
    }
}
# How often an open terminal checks its user may still use it (signed in, same password, owner).
TERMINAL_RECHECK_SECONDS = env_float("TERMINAL_RECHECK_SECONDS", 5.0, minimum=0.05)
# Networks a kubeconfig's server may be on although they are loopback, link-local or the platform's
# own (fullstackagent.kubernetes.kubeconfig refuses those otherwise): e.g. 127.0.0.0/8 for a cluster on this host.
KUBERNETES_ALLOWED_NETWORKS = env_list("KUBERNETES_ALLOWED_NETWORKS", [])
for _network in KUBERNETES_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"KUBERNETES_ALLOWED_NETWORKS: {_network!r} is not a network (e.g. 10.0.0.0/8)")
# Accounts have no e-mail address (sign-up asks for none): a password reset for an unknown
# address sends nothing, rather than mail to whoever typed it.
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = False

# --- metrics for operators (README "Metrics") -----------------------------------------------------
# Every platform process (web processes, Celery workers) writes its counters into files in this folder
# (prometheus-client's multiprocess mode); /metrics in any web process adds them up. `make run`
# empties it at start; docker-compose.yml shares one volume between its containers.
METRICS_DIR = Path(env_str("PROMETHEUS_MULTIPROC_DIR") or STATE_DIR / "metrics").resolve()
# /metrics answers a request carrying `Authorization: Bearer <METRICS_TOKEN>`, or one made directly
# (no X-Forwarded-For) from METRICS_ALLOWED_NETWORKS: loopback while DEBUG, none in production.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"] if DEBUG else [])
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_network!r} is not a network (e.g. 10.0.0.0/8)")
# State computed from the database at scrape time (resources by status, scheduling lag, idle stops):
# collectors named here, so the core's endpoint needs no import of the apps (README "Architecture").
METRICS_COLLECTORS = ["projects.metrics.PlatformStateCollector"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django logs every 4xx answer as a WARNING ("Not Found: /api/…"): a line per request that
        # a scanner or a polling script makes by the thousand, and 13 % of a 404's CPU in the web process
        # (py-spy, bench/api.py). 5xx answers are logged at ERROR with their traceback either way;
        # REQUEST_LOG_LEVEL=WARNING brings the 4xx lines back.
        "django.request": {"level": env_choice("REQUEST_LOG_LEVEL", "ERROR", ("DEBUG", "INFO", "WARNING", "ERROR"))},
    },
}
