from django.conf import settings
from django.utils.module_loading import import_string

BACKENDS = {
    "local": "databases.backends.local.LocalDatabaseBackend",
    "kubernetes": "databases.backends.kubernetes.KubernetesDatabaseBackend",
}

_instances = {}


def get_database_backend(name: str | None = None):
    name = name or settings.SANDBOX_BACKEND
    if name not in _instances:
        _instances[name] = import_string(BACKENDS[name])()
    return _instances[name]
