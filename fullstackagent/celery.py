import logging
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fullstackagent.settings")

app = Celery("fullstackagent")
# Every CELERY_* setting (broker, queue, beat schedule) lives in Django settings.
app.config_from_object("django.conf:settings", namespace="CELERY")
# Every task is the orchestrator's (projects.tasks): the apps below it have none.
app.autodiscover_tasks(["projects"])


@signals.task_failure.connect
def _reset_pools_after_a_database_outage(sender=None, exception=None, **kwargs):
    """A task failed because PostgreSQL was unreachable: drop the worker's connection pool, whose
    reconnect backoff would keep it failing for many seconds after the database is back."""
    from fullstackagent.availability import is_database_unavailable, reset_database_pools

    if is_database_unavailable(exception):
        reset_database_pools()


# Celery logs every task it receives and finishes at INFO: with a scan every few seconds and a step per
# resource, `make run`'s output scrolled the platform's address away in seconds. Those lines go to
# WORKER_TASK_LOG_LEVEL (WARNING unless set); the reconcile engine logs each status transition at INFO
# instead (fullstackagent.reconcile).
QUIET_LOGGERS = ("celery.worker.strategy", "celery.app.trace", "celery.beat")


@signals.after_setup_logger.connect
def _quiet_per_task_lines(**kwargs):
    from django.conf import settings

    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(settings.WORKER_TASK_LOG_LEVEL)
