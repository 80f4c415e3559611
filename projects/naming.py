"""Project names and the Kubernetes names derived from them (README "Production": a project `My Blog!` is `myblog` on Kubernetes)."""

import secrets
import string
import unicodedata

from django.core.exceptions import ValidationError

MAX_PROJECT_NAME_LENGTH = 64
MAX_K8S_PROJECT_NAME_LENGTH = 20
K8S_FALLBACK_NAME = "project"
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


def validate_project_name(name: str) -> str:
    """Letters (any script), digits, spaces and hyphens, starting and ending with a letter.

    Returns the name with surrounding spaces removed; raises ValidationError (code ``invalid_name``).
    """
    name = (name or "").strip()
    if not name:
        raise ValidationError("Enter a project name.", code="invalid_name")
    if len(name) > MAX_PROJECT_NAME_LENGTH:
        raise ValidationError(
            f"A project name has at most {MAX_PROJECT_NAME_LENGTH} characters.", code="invalid_name"
        )
    for character in name:
        if not (character.isalpha() or character.isdigit() or character in " -"):
            raise ValidationError(
                f"{character!r} is not allowed: use letters, digits, spaces and hyphens.", code="invalid_name"
            )
    if not (name[0].isalpha() and name[-1].isalpha()):
        raise ValidationError("A project name starts and ends with a letter.", code="invalid_name")
    return name


def k8s_project_name(name: str) -> str:
    """`My Blog!` → `myblog`: lowercase ASCII letters and digits, at most 20 characters.

    Accented letters keep their base letter (`Café` → `cafe`); names with nothing left (`日本語`)
    get the fallback. The result always starts with a letter, so it is a valid DNS label prefix,
    and never ends in `-` (the original's fault 11), since it has no hyphens at all.
    """
    decomposed = unicodedata.normalize("NFKD", name)
    kept = "".join(c for c in decomposed.lower() if c in string.ascii_lowercase or c in string.digits)
    kept = kept.lstrip(string.digits)[:MAX_K8S_PROJECT_NAME_LENGTH]
    return kept or K8S_FALLBACK_NAME


def resource_name(k8s_name: str) -> str:
    """`myblog-agentruntime-x7k2p9`: StatefulSet, Service, cluster and workspace name."""
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(6))
    return f"{k8s_name}-agentruntime-{suffix}"
