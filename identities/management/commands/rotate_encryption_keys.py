"""Re-encrypt every secret stored at rest under the current (first) field-encryption key.

Rotating a key:
1. put the new key first in FIELD_ENCRYPTION_KEYS and keep the old one after it
   (``FIELD_ENCRYPTION_KEYS=<new>,<old>``), and restart the platform, so new writes use the
   new key while old values still decrypt;
2. run ``python manage.py rotate_encryption_keys``;
3. drop the old key from FIELD_ENCRYPTION_KEYS and restart again.
"""

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import TextField, Value
from django.db.models.functions import Cast

from fullstackagent.encryption import PREFIX, EncryptedJSONField, EncryptedTextField, SecretDecryptionError, rotate

ENCRYPTED_FIELD_TYPES = (EncryptedTextField, EncryptedJSONField)
# How many failing rows the final error lists by name; the count always covers all of them.
LISTED_FAILURES = 20


def encrypted_columns():
    """(model, field) for every encrypted column of every installed model, in a stable order.

    Local fields only, so a column that a child model inherits through multi-table inheritance
    is rotated once, through the model whose table holds it.
    """
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.local_concrete_fields:
            if isinstance(field, ENCRYPTED_FIELD_TYPES):
                yield model, field


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted column of every installed model (such as user settings, environment "
        "variables, database connection URLs and identity metadata) under the first key of "
        "FIELD_ENCRYPTION_KEYS. Every configured key is tried for decryption, so run it with "
        "FIELD_ENCRYPTION_KEYS=<new>,<old>; afterwards the old key can be removed. Values already under the "
        "first key are left as they are. Exits with an error naming the table, column and row of the values "
        f"no configured key decrypts (the first {LISTED_FAILURES}); those rows are left unchanged."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Decrypt and count everything, write nothing.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=500,
            help="Rows read and rewritten per transaction (default 500).",
        )

    def handle(self, *args, dry_run: bool, batch_size: int, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        keys = list(settings.FIELD_ENCRYPTION_KEYS)
        if not keys:
            raise CommandError("FIELD_ENCRYPTION_KEYS is empty")
        current_key = Fernet(keys[0].encode())
        verb = "would re-encrypt" if dry_run else "re-encrypted"

        failures: list[str] = []
        totals = {"rotated": 0, "current": 0, "empty": 0}
        for model, field in encrypted_columns():
            counts = self._rotate_column(model, field, current_key, batch_size, dry_run, failures)
            for name, count in counts.items():
                totals[name] += count
            self.stdout.write(
                f"{model._meta.db_table}.{field.column}: {verb} {counts['rotated']}, "
                f"already under the current key {counts['current']}, empty {counts['empty']}"
            )

        self.stdout.write(
            f"Total: {verb} {totals['rotated']}, already under the current key {totals['current']}, "
            f"empty {totals['empty']}, undecryptable {len(failures)}"
            + (" (dry run: nothing written)" if dry_run else "")
        )
        if failures:
            listed = "\n  ".join(failures[:LISTED_FAILURES])
            more = f"\n  ... and {len(failures) - LISTED_FAILURES} more" if len(failures) > LISTED_FAILURES else ""
            raise CommandError(
                f"{len(failures)} stored value(s) cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS "
                f"and were left unchanged; add the key that encrypted them (after the current one) and run "
                f"again:\n  {listed}{more}"
            )

    def _rotate_column(self, model, field, current_key, batch_size, dry_run, failures) -> dict[str, int]:
        counts = {"rotated": 0, "current": 0, "empty": 0}
        table = model._meta.db_table
        # The base manager: a default manager that hides rows (soft deletes) must not hide them here.
        manager = model._base_manager
        # Cast to a plain text column: the stored token comes back as it is, without from_db_value
        # decrypting it (which would raise on the very rows we must name).
        raw_rows = manager.annotate(stored_token=Cast(field.name, output_field=TextField())).order_by("pk")
        last_pk = None
        while True:
            page = raw_rows if last_pk is None else raw_rows.filter(pk__gt=last_pk)
            batch = list(page.values_list("pk", "stored_token")[:batch_size])
            if not batch:
                return counts
            last_pk = batch[-1][0]
            with transaction.atomic():
                for pk, stored in batch:
                    if not stored:
                        counts["empty"] += 1
                        continue
                    where = f"{table}.{field.column} {model._meta.pk.column}={pk}"
                    if not stored.startswith(PREFIX):
                        failures.append(f"{where}: not an encrypted token")
                        continue
                    if _readable_with(current_key, stored):
                        counts["current"] += 1
                        continue
                    try:
                        rotated = rotate(stored)
                    except SecretDecryptionError:
                        failures.append(f"{where}: no configured key decrypts it")
                        continue
                    counts["rotated"] += 1
                    if dry_run:
                        continue
                    # Written as a plain text Value so the field does not encrypt the token again, and
                    # only if the row still holds what we read: a concurrent save (already under the
                    # current key) wins over our stale copy.
                    manager.annotate(stored_token=Cast(field.name, output_field=TextField())).filter(
                        pk=pk, stored_token=stored
                    ).update(**{field.name: Value(rotated, output_field=TextField())})


def _readable_with(key: Fernet, stored: str) -> bool:
    try:
        key.decrypt(stored[len(PREFIX):].encode())
    except InvalidToken:
        return False
    return True
