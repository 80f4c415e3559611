"""Local database backend: one real PostgreSQL database and login role per project, on the server
that settings.LOCAL_DATABASE_ADMIN_URL names (by default the platform's own, embedded or not).

- create/start: the role (LOGIN, random password) and the database it owns exist and accept
  connections; other roles cannot connect (CONNECT revoked from PUBLIC). The server's shared
  databases (the platform's own, `postgres`, `template1`) refuse project roles too: a sandbox has
  its role's password, and local sandboxes share the host's network with the server.
- stop: the database refuses new connections (ALLOW_CONNECTIONS false) and open ones are ended.
- delete: the database and the role are dropped.
Every statement is idempotent or guarded, so a step repeated after a crash converges.
"""

import secrets
from urllib.parse import quote, unquote, urlsplit

import psycopg
from django.conf import settings
from django.db import connection as platform_connection
from psycopg import errors, sql

from databases.backends.base import DatabaseObservation, DatabasePhase, DatabaseSpec
from fullstackagent.backends import PermanentError, RetryableError

PASSWORD_BYTES = 24


def local_identifier(name: str) -> str:
    """`myblog-agentruntime-x7k2p9` → `myblog_agentruntime_x7k2p9`: a role and database name that
    needs no quoting in psql or in a URL (after LOCAL_DATABASE_NAME_PREFIX, if set)."""
    return settings.LOCAL_DATABASE_NAME_PREFIX + name.replace("-", "_")


# Servers whose shared databases this process has already locked (one check per process and server).
_locked_servers: set[tuple[str, str]] = set()


def lock_shared_databases(connection: psycopg.Connection) -> None:
    """REVOKE CONNECT ... FROM PUBLIC on the databases of the server that are not a project's: the
    platform's own (the test database in a test run), `postgres` and `template1`. The platform's own
    account keeps its access through an explicit grant (an owner or superuser has it anyway)."""
    platform_database = platform_connection.settings_dict["NAME"]
    key = (settings.LOCAL_DATABASE_ADMIN_URL, platform_database)
    if key in _locked_servers:
        return
    existing = [
        row[0]
        for row in connection.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", [["postgres", "template1", platform_database]]
        )
    ]
    platform_user = platform_connection.settings_dict.get("USER")
    for name in existing:
        if name == platform_database and platform_user:
            connection.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(name), sql.Identifier(platform_user))
            )
        connection.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
    _locked_servers.add(key)


class LocalDatabaseBackend:
    poll_interval = 0.25

    def _admin(self) -> psycopg.Connection:
        try:
            return psycopg.connect(settings.LOCAL_DATABASE_ADMIN_URL, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as error:
            # The server being down is passing (a restart); the reconciler backs off and retries.
            raise RetryableError("The database server is not reachable right now.") from error

    def _server(self) -> tuple[str, int]:
        parts = urlsplit(settings.LOCAL_DATABASE_ADMIN_URL)
        return parts.hostname or "127.0.0.1", parts.port or 5432

    def _url(self, role: str, password: str) -> str:
        host, port = self._server()
        return f"postgresql://{role}:{quote(password, safe='')}@{host}:{port}/{role}"

    def _state(self, connection, name: str) -> tuple[bool, bool, bool]:
        """(role exists, database exists, database allows connections)."""
        role = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
        database = connection.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", [name]).fetchone()
        return bool(role), bool(database), bool(database and database[0])

    def _password(self, spec: DatabaseSpec) -> str:
        """Keeps the password already given out (sandboxes have it in DATABASE_URL)."""
        if spec.connection_url:
            password = urlsplit(spec.connection_url).password
            if password:
                return unquote(password)
        return secrets.token_urlsafe(PASSWORD_BYTES)

    def _ensure(self, spec: DatabaseSpec) -> DatabaseObservation:
        name = local_identifier(spec.name)
        password = self._password(spec)
        role, database = sql.Identifier(name), sql.Identifier(name)
        try:
            with self._admin() as connection:
                lock_shared_databases(connection)
                role_exists, database_exists, _ = self._state(connection, name)
                if not role_exists:
                    try:
                        connection.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
                    except errors.DuplicateObject:
                        pass  # created by a step that crashed before recording the URL
                # Always (re)set: after a crash between CREATE ROLE and storing the URL the old
                # password is unknown, and setting a known one is the only way to converge.
                connection.execute(
                    sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(role, sql.Literal(password))
                )
                if not database_exists:
                    try:
                        connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, role))
                    except errors.DuplicateDatabase:
                        pass
                connection.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(database))
                connection.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, role))
                connection.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(database))
        except errors.InsufficientPrivilege as error:
            raise PermanentError(
                "The platform's database account may not create databases; give LOCAL_DATABASE_ADMIN_URL a superuser."
            ) from error
        except psycopg.OperationalError as error:
            raise RetryableError("The database server did not answer; retrying.") from error
        return DatabaseObservation(DatabasePhase.RUNNING, connection_url=self._url(name, password))

    def create(self, spec: DatabaseSpec) -> DatabaseObservation:
        return self._ensure(spec)

    def start(self, spec: DatabaseSpec) -> DatabaseObservation:
        return self._ensure(spec)

    def stop(self, spec: DatabaseSpec) -> DatabaseObservation:
        name = local_identifier(spec.name)
        with self._admin() as connection:
            _, database_exists, _ = self._state(connection, name)
            if not database_exists:
                return DatabaseObservation(DatabasePhase.MISSING)
            # First refuse new connections, then end the open ones: the other order lets a client
            # reconnect in between.
            connection.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
        return DatabaseObservation(DatabasePhase.STOPPED, connection_url=spec.connection_url)

    def delete(self, spec: DatabaseSpec) -> DatabaseObservation:
        name = local_identifier(spec.name)
        with self._admin() as connection:
            # FORCE ends open sessions (PostgreSQL 13+); the role can only go once its database has.
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        return DatabaseObservation(DatabasePhase.MISSING)

    def delete_all_prefixed(self) -> int:
        """Drops every database and role whose name starts with LOCAL_DATABASE_NAME_PREFIX (a test
        run's own, at its end); how many databases. Refused without a prefix: that would be all."""
        prefix = settings.LOCAL_DATABASE_NAME_PREFIX
        if not prefix:
            raise ValueError("LOCAL_DATABASE_NAME_PREFIX is not set: nothing marks this run's databases")
        with self._admin() as connection:
            databases = [row[0] for row in connection.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [prefix]
            )]
            for name in databases:
                connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            for (name,) in connection.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", [prefix]).fetchall():
                connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        return len(databases)

    def observe(self, spec: DatabaseSpec) -> DatabaseObservation:
        name = local_identifier(spec.name)
        with self._admin() as connection:
            role_exists, database_exists, allows = self._state(connection, name)
        if not (role_exists and database_exists):
            return DatabaseObservation(DatabasePhase.MISSING)
        if not allows:
            return DatabaseObservation(DatabasePhase.STOPPED, connection_url=spec.connection_url)
        return DatabaseObservation(DatabasePhase.RUNNING, connection_url=spec.connection_url)
