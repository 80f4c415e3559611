"""What identities announces to the apps above it, which it never imports (README "Architecture").

Receivers run synchronously in the sender's thread; an exception in one reaches the sender.
"""

from django.dispatch import Signal

# A user's setting was saved or removed (identities.services.set_user_config), inside the
# transaction that wrote it. Arguments: user_id, key. The sandbox environment is built from some of
# these settings, so projects re-applies it to the user's running sandboxes.
user_config_changed = Signal()

# A Sealos user signed in (identities.services.do_sign_in_with_sealos), after the sign-in committed
# and outside any transaction, so a receiver may call the network. Arguments: user, sealos_user_id,
# kubeconfig. aiproxy provisions an Anthropic key here; a receiver must not refuse the sign-in.
sealos_user_signed_in = Signal()
