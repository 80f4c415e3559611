"""Aiproxy's part of a Sealos sign-in (identities.signals), connected in AiproxyConfig.ready."""

from django.dispatch import receiver

from aiproxy.services import do_provision_anthropic_key
from identities.signals import sealos_user_signed_in


@receiver(sealos_user_signed_in, dispatch_uid="aiproxy.receivers.provision_anthropic_key")
def provision_anthropic_key(sender, user, sealos_user_id, kubeconfig, **kwargs):
    # Never raises for an Aiproxy failure (the next sign-in asks again), so sign-in never waits on it.
    do_provision_anthropic_key(user, sealos_user_id=sealos_user_id, kubeconfig=kubeconfig)
