from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings

from identities import services


class AccountAdapter(DefaultAccountAdapter):
    """Username/password accounts, recorded as a PASSWORD identity."""

    def is_open_for_signup(self, request):
        return settings.ENABLE_PASSWORD_AUTH

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            services.record_password_identity(user)
        return user


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin):
        return settings.ENABLE_GITHUB_AUTH
