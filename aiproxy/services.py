"""Anthropic keys for Sealos users, provisioned through Aiproxy at sign-in."""

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from aiproxy.client import AiproxyError, key_name_for, request_key
from identities.models import ConfigKey
from identities.services import get_user_config, set_user_config

logger = logging.getLogger(__name__)


def aiproxy_configured() -> bool:
    return bool(settings.AIPROXY_ENDPOINT and settings.ANTHROPIC_BASE_URL)


def do_provision_anthropic_key(user, *, sealos_user_id: str, kubeconfig: str) -> bool:
    """Gives a Sealos user an Anthropic key from Aiproxy when they have none; True when one was stored.

    Never raises for an Aiproxy failure: sign-in must work without a key. Because nothing is stored
    on failure, the next Sealos sign-in asks again. Call it outside any transaction: the HTTP call
    may take up to AIPROXY_TIMEOUT_SECONDS and must not hold row locks meanwhile.
    """
    if not aiproxy_configured():
        return False
    if get_user_config(user, ConfigKey.ANTHROPIC_API_KEY):
        return False
    name = key_name_for(sealos_user_id)
    try:
        key = request_key(name=name, kubeconfig=kubeconfig)
    except AiproxyError as error:
        logger.warning("aiproxy: no Anthropic key for user %s (%s): %s; will ask again at next sign-in", user.pk, name, error)
        return False
    with transaction.atomic():
        # Re-check under the user's lock: a concurrent sign-in may have stored a key meanwhile, or
        # the user may have saved their own key in settings; neither is overwritten.
        get_user_model().objects.select_for_update(no_key=True).filter(pk=user.pk).first()
        if get_user_config(user, ConfigKey.ANTHROPIC_API_KEY):
            return False
        set_user_config(user, ConfigKey.ANTHROPIC_API_KEY, key.key)
        # The key only works against Aiproxy's Anthropic endpoint, so the pair is stored together.
        set_user_config(user, ConfigKey.ANTHROPIC_BASE_URL, settings.ANTHROPIC_BASE_URL)
    logger.info("aiproxy: stored Anthropic key %s for user %s", key.name, user.pk)
    return True
