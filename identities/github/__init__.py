"""GitHub sign-in: django-allauth's GitHub provider, pointed at configurable GitHub addresses.

settings.SOCIALACCOUNT_PROVIDERS["github"]["provider_class"] names ``provider.GitHubProvider``, so
allauth builds its GitHub URLs (``/accounts/github/login/`` and ``.../login/callback/``) from this
package's ``urls`` and ``views`` instead of its own.
"""
