"""The OAuth2 adapter and the login/callback views for GitHub.

allauth's own adapter fixes GitHub's addresses when its module is imported; ours reads
GITHUB_OAUTH_BASE_URL and GITHUB_API_BASE_URL on every request, so a deployment on GitHub Enterprise
(or a test with a local fake GitHub) only sets those two settings.
"""

import functools
from urllib.parse import urlencode

from allauth.socialaccount.providers.github.views import GitHubOAuth2Adapter as AllauthGitHubOAuth2Adapter
from allauth.socialaccount.providers.oauth2.client import OAuth2Client
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView, OAuth2LoginView
from django.conf import settings
from django.http import Http404


class ScopeInOrderOAuth2Client(OAuth2Client):
    """allauth joins the scopes through a set, so their order changes with Python's hash seed;
    this keeps the configured order ("repo read:user") in every authorize URL."""

    def get_redirect_url(self, authorization_url, scope, extra_params) -> str:
        params = {
            self.client_id_parameter: self.consumer_key,
            "redirect_uri": self.callback_url,
            "scope": self.scope_delimiter.join(dict.fromkeys(scope)),  # de-duplicated, order kept
            "response_type": "code",
        }
        if self.state:
            params["state"] = self.state
        params.update(extra_params)
        return f"{authorization_url}?{urlencode(params)}"


class GitHubOAuth2Adapter(AllauthGitHubOAuth2Adapter):
    client_class = ScopeInOrderOAuth2Client

    @property
    def web_url(self):
        return settings.GITHUB_OAUTH_BASE_URL.rstrip("/")

    @property
    def api_url(self):
        return settings.GITHUB_API_BASE_URL.rstrip("/")

    @property
    def access_token_url(self):
        return f"{self.web_url}/login/oauth/access_token"

    @property
    def authorize_url(self):
        return f"{self.web_url}/login/oauth/authorize"

    @property
    def profile_url(self):
        return f"{self.api_url}/user"

    @property
    def emails_url(self):
        return f"{self.api_url}/user/emails"


def only_when_github_enabled(view):
    """GitHub's endpoints do not exist while ENABLE_GITHUB_AUTH is off (checked per request)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not settings.ENABLE_GITHUB_AUTH:
            raise Http404("GitHub sign-in is not enabled")
        return view(request, *args, **kwargs)

    return wrapper


oauth2_login = only_when_github_enabled(OAuth2LoginView.adapter_view(GitHubOAuth2Adapter))
oauth2_callback = only_when_github_enabled(OAuth2CallbackView.adapter_view(GitHubOAuth2Adapter))
