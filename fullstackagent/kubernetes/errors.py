"""How a Kubernetes API failure becomes a RetryableError or a PermanentError.

The message is what the user reads as the resource's last error: it says what failed and what to
do, names the namespace and the object kind, and never includes a credential or a request body.
"""

import json
from contextlib import contextmanager

import urllib3
from kubernetes.client.rest import ApiException

from fullstackagent.backends import PermanentError, RetryableError


def api_message(error: ApiException) -> str:
    """The API server's own one-line explanation (the Status object's message), if any."""
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        return ""
    message = body.get("message") if isinstance(body, dict) else ""
    return (message or "")[:300]


def classify(error: Exception, action: str, namespace: str) -> Exception:
    """The error to raise for ``error`` raised while ``action`` (e.g. "create the StatefulSet x")."""
    if isinstance(error, ApiException):
        status = error.status or 0
        detail = api_message(error)
        if status == 401:
            return PermanentError(
                f"The cluster rejected your kubeconfig's credentials (401 Unauthorized) while trying to {action}: "
                "the token or certificate is wrong or expired. Save a fresh kubeconfig in Settings, then start the project."
            )
        if status == 403:
            return PermanentError(
                f"Your kubeconfig has no permission to {action} in namespace '{namespace}' (403 Forbidden). "
                "Use a kubeconfig for a namespace you own, or ask the cluster admin for this permission, then start the project."
            )
        if status in (400, 415, 422):
            return PermanentError(f"The cluster refused to {action} ({status}): {detail or error.reason}")
        if status == 404:
            # A 404 on a collection: the namespace or the resource type (a missing CRD) is absent.
            return PermanentError(
                f"The cluster has no place to {action} (404: {detail or 'not found'}). "
                f"Check that namespace '{namespace}' exists and that the required operators are installed."
            )
        if status == 409:
            return RetryableError(f"A concurrent change conflicted while trying to {action}; trying again.")
        if status == 429 or status >= 500:
            return RetryableError(f"The cluster answered {status} {error.reason or ''} while trying to {action}.".replace(" .", "."))
        return RetryableError(f"The cluster answered {status} while trying to {action}.")
    if isinstance(error, (urllib3.exceptions.TimeoutError, urllib3.exceptions.MaxRetryError)) and "timed out" in str(error).lower():
        return RetryableError(f"The cluster did not answer in time while trying to {action}.")
    return RetryableError(f"Cannot reach the cluster while trying to {action} ({error.__class__.__name__}).")


@contextmanager
def kubernetes_call(action: str, namespace: str):
    """Runs one API call; lets ApiException 404/409 through to callers that expect them
    (``expect``), classifies everything else."""
    try:
        yield
    except ApiException as error:
        raise classify(error, action, namespace) from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise classify(error, action, namespace) from error
