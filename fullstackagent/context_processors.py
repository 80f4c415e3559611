from django.conf import settings


def platform(request):
    """Sign-in methods the templates offer (only the enabled ones are shown), and the sandbox backend
    (the settings page says when a kubeconfig is not used)."""
    return {
        "SANDBOX_BACKEND": settings.SANDBOX_BACKEND,
        "ENABLE_PASSWORD_AUTH": settings.ENABLE_PASSWORD_AUTH,
        "ENABLE_GITHUB_AUTH": settings.ENABLE_GITHUB_AUTH,
        "ENABLE_SEALOS_AUTH": settings.ENABLE_SEALOS_AUTH,
    }
