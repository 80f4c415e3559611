import logging
import smtplib

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.providers.base import AuthProcess
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import render
from django.urls import reverse

from identities import services
from identities.models import IdentityProvider

logger = logging.getLogger(__name__)


class AccountAdapter(DefaultAccountAdapter):
    """Username/password accounts, recorded as a PASSWORD identity."""

    def is_open_for_signup(self, request):
        return settings.ENABLE_PASSWORD_AUTH

    def authenticate(self, request, **credentials):
        # Hiding the form is not enough: with password sign-in off, a posted password is refused
        # here too (GitHub and Sealos sign-ins do not come through this method).
        if not settings.ENABLE_PASSWORD_AUTH:
            return None
        return super().authenticate(request, **credentials)

    def send_mail(self, template_prefix, email, context):
        # A mail server that is down or not configured (Django's default is localhost:25) must
        # not turn a password reset into a 500: the page answers as for any address, and the
        # operators find the failure in the log.
        try:
            super().send_mail(template_prefix, email, context)
        except (OSError, smtplib.SMTPException):
            logger.exception("could not send the %s mail", template_prefix)

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            services.record_password_identity(user)
        return user


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """GitHub sign-in, mirrored into GITHUB identities.

    allauth's SocialAccount decides who a GitHub account signs in as; the UserIdentity row carries
    the access token (encrypted metadata; allauth stores no tokens, SOCIALACCOUNT_STORE_TOKENS is
    off). Both are created together and removed together (services.do_unlink_identity).
    """

    def is_open_for_signup(self, request, sociallogin):
        return settings.ENABLE_GITHUB_AUTH

    def is_auto_signup_allowed(self, request, sociallogin):
        # Always sign up directly: allauth's alternative, its sign-up form, parks the whole social
        # login, OAuth token included, in the session (stored in clear) until the form is sent.
        return True

    def save_user(self, request, sociallogin, form=None):
        # The new user, its SocialAccount and its GITHUB identity exist together or not at all.
        with transaction.atomic():
            user = super().save_user(request, sociallogin, form)
            services.do_link_identity(
                user, IdentityProvider.GITHUB, sociallogin.account.uid, metadata=github_identity_metadata(sociallogin)
            )
        return user

    def pre_social_login(self, request, sociallogin):
        """A returning GitHub user: refresh the identity's token and profile before signing in."""
        if not sociallogin.is_existing:
            return  # new account: save_user or the connect signal records the identity
        connecting = sociallogin.state.get("process") == AuthProcess.CONNECT
        if connecting and sociallogin.user != request.user:
            return  # allauth refuses connecting another user's GitHub account; nothing to record
        try:
            services.do_link_identity(
                sociallogin.user,
                IdentityProvider.GITHUB,
                sociallogin.account.uid,
                metadata=github_identity_metadata(sociallogin),
            )
        except services.IdentityInUse as error:
            # Only reachable if the two records disagree (edited by hand): refuse, never guess.
            raise ImmediateHttpResponse(
                render(request, "identities/github_refused.html", {"reason": str(error)}, status=403)
            ) from None

    def get_connect_redirect_url(self, request, socialaccount):
        return reverse("identities:sign-in-methods")

    def validate_disconnect(self, account, accounts):
        # allauth's own "connections" page would delete the SocialAccount and leave the identity
        # (with its token) behind; unlinking goes through the sign-in methods page only.
        raise ValidationError("Remove sign-in methods on the Sign-in methods page.")


def github_identity_metadata(sociallogin) -> dict:
    """What a GITHUB identity keeps: the GitHub login and name, and the OAuth access token
    (the whole document is encrypted at rest, see UserIdentity.metadata)."""
    profile = sociallogin.account.extra_data or {}
    return {
        "login": profile.get("login") or "",
        "name": profile.get("name") or "",
        "access_token": sociallogin.token.token if sociallogin.token else "",
    }
