from django.apps import AppConfig


class IdentitiesConfig(AppConfig):
    name = "identities"

    def ready(self):
        # Connects the receivers that mirror allauth's connected GitHub accounts into identities.
        from identities import receivers  # noqa: F401
