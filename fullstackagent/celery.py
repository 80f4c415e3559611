import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fullstackagent.settings")

app = Celery("fullstackagent")
# Every CELERY_* setting (broker, queue, beat schedule) lives in Django settings.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["fullstackagent", "sandboxes", "databases"])
