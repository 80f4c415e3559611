"""What projects does when an app below it announces a change (connected in ProjectsConfig.ready)."""

from django.dispatch import receiver

from identities.signals import user_config_changed
from projects.services import environment_changed_for_user


@receiver(user_config_changed, dispatch_uid="projects.receivers.user_config_changed")
def reapply_user_environment(sender, user_id, key, **kwargs):
    # The sandbox environment is built from the user's Anthropic settings and prompt: running
    # sandboxes re-apply it, in the transaction that saved the setting.
    environment_changed_for_user(user_id)
