from django.apps import AppConfig


class AiproxyConfig(AppConfig):
    name = "aiproxy"

    def ready(self):
        # Provisions an Anthropic key when a Sealos user signs in (aiproxy.receivers).
        from aiproxy import receivers  # noqa: F401
