from django.apps import AppConfig


class PreviewsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "previews"
    verbose_name = "Previews"
