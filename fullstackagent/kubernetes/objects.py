"""What every Kubernetes object the platform creates shares: its labels, and how an object read
back from the API server is compared with the one the platform wants."""

import re

PROJECT_LABEL = "project.fullstackagent.io/name"
DEPLOY_MANAGER_LABEL = "cloud.sealos.io/app-deploy-manager"
MANAGED_BY = {"app.kubernetes.io/managed-by": "fullstackagent"}

_LABEL_VALUE_INVALID = re.compile(r"[^A-Za-z0-9_.-]")


def label_value(value: str) -> str:
    """A valid label value for any input: at most 63 characters of [A-Za-z0-9_.-], starting and
    ending with an alphanumeric (fault 11: a trimmed name ending in `-`)."""
    cleaned = _LABEL_VALUE_INVALID.sub("", value)[:63]
    return cleaned.strip("-_.")


def contains(actual, desired) -> bool:
    """True when every field of ``desired`` has the same value in ``actual``. Fields the API
    server adds (defaults, status, resourceVersion) are ignored, so an unchanged object never
    looks drifted; lists must match element by element."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(contains(actual.get(key), value) for key, value in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(desired)
            and all(contains(a, d) for a, d in zip(actual, desired))
        )
    return actual == desired
