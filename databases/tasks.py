from celery import shared_task
from django.conf import settings
from django.db import transaction

from databases import reconcile
from databases.models import Database
from fullstackagent.reconcile import run_step
from fullstackagent.requeue import publish_later


@shared_task(name="databases.tasks.reconcile_database", ignore_result=True)
def reconcile_database(database_id: int) -> None:
    from projects.services import refresh_project_status
    from sandboxes.services import environment_changed_for_projects

    before = Database.objects.filter(pk=database_id).values_list("connection_url", flat=True).first()
    row, result, landed = run_step(Database, database_id, reconcile.step)
    if row is None:
        return
    refresh_project_status(row.project_id)
    if result.fields.get("connection_url", before) != before:
        # The sandbox's DATABASE_URL changed: re-apply its environment (or let it start now).
        with transaction.atomic():
            environment_changed_for_projects([row.project_id])
    if not landed:
        publish_later(reconcile_database, (database_id,), 0.05)
    elif result.recheck_in is not None and result.recheck_in <= settings.RECONCILE_INTERVAL_SECONDS:
        publish_later(reconcile_database, (database_id,), result.recheck_in)
