import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fullstackagent.settings")

app = Celery("fullstackagent")
# Every CELERY_* setting (broker, queue, beat schedule) lives in Django settings.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["fullstackagent", "sandboxes", "databases"])


@signals.task_failure.connect
def _reset_pools_after_a_database_outage(sender=None, exception=None, **kwargs):
    """A task failed because PostgreSQL was unreachable: drop the worker's connection pool, whose
    reconnect backoff would keep it failing for many seconds after the database is back."""
    from fullstackagent.availability import is_database_unavailable, reset_database_pools

    if is_database_unavailable(exception):
        reset_database_pools()
