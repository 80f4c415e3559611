"""A fake GitHub for tests and local demos: a real HTTP server on 127.0.0.1 speaking the parts of
GitHub's OAuth web flow and REST API that sign-in uses.

    with FakeGitHub(client_id="id", client_secret="secret") as github:
        github.signs_in(GitHubAccount(id=583231, login="octocat", name="The Octocat"))
        # settings.GITHUB_OAUTH_BASE_URL = settings.GITHUB_API_BASE_URL = github.url

- ``GET /login/oauth/authorize``: records the request and redirects to ``redirect_uri`` with a
  one-time ``code`` and the ``state`` it was given (or ``error=access_denied`` after ``denies()``),
  as GitHub does once the user approves or cancels.
- ``POST /login/oauth/access_token``: exchanges the code (client id and secret checked) for a new
  access token, answered as JSON.
- ``GET /user`` and ``GET /user/emails`` with ``Authorization: token <access token>``.
Every request is kept in ``requests`` (method, path, query, form, headers) for assertions.
"""

import itertools
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlencode, urlsplit

from fullstackagent.testing.http import LocalHTTPServer


@dataclass
class GitHubAccount:
    id: int
    login: str
    name: str = ""
    email: str | None = None

    def profile(self) -> dict:
        return {
            "id": self.id,
            "login": self.login,
            "name": self.name,
            "email": self.email,
            "html_url": f"https://github.com/{self.login}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{self.id}",
        }


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict
    form: dict
    headers: dict = field(default_factory=dict)


class FakeGitHub(LocalHTTPServer):
    thread_name = "fake-github"

    def __init__(self, *, client_id: str, client_secret: str):
        self.client_id = client_id
        self.client_secret = client_secret
        self.requests: list[RecordedRequest] = []
        self.issued_tokens: list[str] = []
        self._account: GitHubAccount | None = None
        self._deny = False
        self._codes: dict[str, tuple[GitHubAccount, str]] = {}  # code -> (account, redirect_uri)
        self._tokens: dict[str, GitHubAccount] = {}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        super().__init__()

    def signs_in(self, account: GitHubAccount) -> None:
        """The next authorize request is approved by this GitHub user."""
        self._account, self._deny = account, False

    def denies(self) -> None:
        """The next authorize request is cancelled by the user (error=access_denied)."""
        self._deny = True

    def calls(self, path: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == path]

    # --- the HTTP side ---------------------------------------------------------------------------

    def _handler_class(self):
        github = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _record(self) -> RecordedRequest:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                form = {key: values[-1] for key, values in parse_qs(body).items()}
                query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
                recorded = RecordedRequest(self.command, parts.path, query, form, dict(self.headers.items()))
                with github._lock:
                    github.requests.append(recorded)
                return recorded

            def _json(self, status: int, document) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _account_from_token(self):
                authorization = self.headers.get("Authorization", "")
                scheme, _, token = authorization.partition(" ")
                if scheme.lower() not in ("token", "bearer"):
                    return None
                return github._tokens.get(token)

            def do_GET(self):
                request = self._record()
                if request.path == "/login/oauth/authorize":
                    return self._authorize(request)
                if request.path in ("/user", "/user/emails"):
                    account = self._account_from_token()
                    if account is None:
                        return self._json(401, {"message": "Bad credentials"})
                    if request.path == "/user":
                        return self._json(200, account.profile())
                    emails = [{"email": account.email, "primary": True, "verified": True}] if account.email else []
                    return self._json(200, emails)
                return self._json(404, {"message": "Not Found"})

            def do_POST(self):
                request = self._record()
                if request.path != "/login/oauth/access_token":
                    return self._json(404, {"message": "Not Found"})
                form = request.form
                if form.get("client_id") != github.client_id or form.get("client_secret") != github.client_secret:
                    return self._json(200, {"error": "incorrect_client_credentials"})
                with github._lock:
                    grant = github._codes.pop(form.get("code", ""), None)
                if grant is None or grant[1] != form.get("redirect_uri"):
                    return self._json(200, {"error": "bad_verification_code"})
                token = f"gho_{secrets.token_hex(18)}"
                with github._lock:
                    github._tokens[token] = grant[0]
                    github.issued_tokens.append(token)
                return self._json(200, {"access_token": token, "token_type": "bearer", "scope": "repo,read:user"})

            def _authorize(self, request):
                redirect_uri = request.query.get("redirect_uri", "")
                if request.query.get("client_id") != github.client_id or not redirect_uri:
                    return self._json(404, {"message": "Not Found"})
                answer = {"state": request.query.get("state", "")}
                if github._deny or github._account is None:
                    answer = {"error": "access_denied", "error_description": "The user has denied your application access.", **answer}
                else:
                    code = f"code{next(github._counter)}{secrets.token_hex(6)}"
                    with github._lock:
                        github._codes[code] = (github._account, redirect_uri)
                    answer = {"code": code, **answer}
                separator = "&" if "?" in redirect_uri else "?"
                self.send_response(302)
                self.send_header("Location", f"{redirect_uri}{separator}{urlencode(answer)}")
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler
