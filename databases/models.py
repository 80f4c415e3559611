from django.db import models

from fullstackagent.encryption import EncryptedTextField
from fullstackagent.models import ReconciledResource


class Database(ReconciledResource):
    """A project's PostgreSQL database (a KubeBlocks cluster, or a database on the local server)."""

    # One per project (``project.database``).
    project = models.OneToOneField("projects.Project", on_delete=models.CASCADE, related_name="database")
    name = models.CharField(max_length=63, unique=True)
    k8s_namespace = models.CharField(max_length=63, blank=True)
    # postgresql://user:password@host:port/db — encrypted; the sandbox gets it as DATABASE_URL.
    connection_url = EncryptedTextField(blank=True)
    # The user chose to re-create the database empty after it was found gone (its data lost). Never
    # done without asking: an app would run on against an empty database. Cleared by that step.
    recreate_requested = models.BooleanField(default=False)

    class Meta(ReconciledResource.Meta):
        pass

    def __str__(self):
        return self.name
