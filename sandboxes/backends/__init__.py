from django.conf import settings
from django.utils.module_loading import import_string

BACKENDS = {
    "local": "sandboxes.backends.local.LocalSandboxBackend",
    "kubernetes": "sandboxes.backends.kubernetes.KubernetesSandboxBackend",
}

_instances = {}


def get_sandbox_backend(name: str | None = None):
    """The configured backend (one instance per process: backends cache clients)."""
    name = name or settings.SANDBOX_BACKEND
    if name not in _instances:
        _instances[name] = import_string(BACKENDS[name])()
    return _instances[name]
