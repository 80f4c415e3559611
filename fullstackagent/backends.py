"""What the sandbox and database backends share: the user a call acts for, and the errors they
raise (the reconcile driver decides from the class what happens next)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Owner:
    """The user a backend call acts for."""

    user_id: int
    # The user's kubeconfig (UserConfig KUBECONFIG), decrypted; None when the user has none.
    kubeconfig: str | None = None


class BackendError(Exception):
    """Base class. ``str(error)`` is shown to the user as the resource's last error, so it must
    say what went wrong in words a user can act on, and never contain a secret."""


class RetryableError(BackendError):
    """A passing fault: network, timeout, 5xx, 409 conflict, a process still starting. Backed off."""


class PermanentError(BackendError):
    """Retrying cannot help: bad kubeconfig, 401/403, an invalid spec. The resource goes to ERROR."""
