"""Receivers for allauth's social-account events (connected in IdentitiesConfig.ready)."""

from allauth.socialaccount.signals import social_account_added
from django.core.exceptions import ValidationError
from django.db import transaction
from django.dispatch import receiver

from identities import services
from identities.models import IdentityProvider


@receiver(social_account_added)
def link_connected_github_account(sender, request, sociallogin, **kwargs):
    """A signed-in user connected GitHub (the "Link GitHub" button): record the GITHUB identity."""
    if sociallogin.account.provider != "github":
        return
    from identities.adapters import github_identity_metadata

    try:
        with transaction.atomic():
            services.do_link_identity(
                sociallogin.user,
                IdentityProvider.GITHUB,
                sociallogin.account.uid,
                metadata=github_identity_metadata(sociallogin),
            )
    except services.IdentityInUse:
        # allauth saved the SocialAccount just before sending this signal; take it back so the two
        # records stay in step, and let allauth show its "connected to another account" message.
        sociallogin.account.delete()
        raise ValidationError("This GitHub account is already linked to another user.") from None
