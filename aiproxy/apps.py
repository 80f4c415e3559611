from django.apps import AppConfig


class AiproxyConfig(AppConfig):
    name = "aiproxy"
