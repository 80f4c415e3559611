from allauth.socialaccount.providers.github.provider import GitHubProvider as AllauthGitHubProvider

from identities.github.views import GitHubOAuth2Adapter


class GitHubProvider(AllauthGitHubProvider):
    """allauth's GitHub provider with our adapter, and without GitHub's e-mail addresses.

    Accounts here are identified by username and linked identities, never by e-mail: taking the
    GitHub address would let a GitHub account that shows someone else's address block sign-up
    (allauth refuses duplicates) or, worse, suggest merging accounts by e-mail.
    """

    # allauth imports `<package>.urls` and `<package>.views` for this provider's endpoints.
    package = "identities.github"
    oauth2_adapter_class = GitHubOAuth2Adapter

    def extract_common_fields(self, data):
        return {"username": data.get("login"), "name": data.get("name")}

    def extract_email_addresses(self, data):
        return []


provider_classes = [GitHubProvider]
