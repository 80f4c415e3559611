from celery import shared_task

from databases.models import Database
from databases.tasks import reconcile_database
from fullstackagent.reconcile import claim_due_ids
from sandboxes.models import Sandbox
from sandboxes.tasks import reconcile_sandbox


@shared_task(name="fullstackagent.tasks.scan_resources", ignore_result=True)
def scan_resources() -> int:
    """The beat's safety net: queue one reconcile task per due row (two statements per tick)."""
    database_ids = claim_due_ids(Database)
    sandbox_ids = claim_due_ids(Sandbox)
    for database_id in database_ids:
        reconcile_database.delay(database_id)
    for sandbox_id in sandbox_ids:
        reconcile_sandbox.delay(sandbox_id)
    return len(database_ids) + len(sandbox_ids)
