"""New rows of several tables in one statement: a chain of data-modifying CTEs.

Creating a project writes five rows (the project, its sandbox, its database, their two events and
the terminal token); saved one by one they were five statements, each compiled by the ORM and sent
in its own round trip: half of a create's CPU in the web process and in PostgreSQL (bench/api.py).
``insert_together`` writes such a group at once, as ``Model.save()`` would each row: the model
instances are built as usual (defaults applied), each field prepares its own value (``pre_save``
fills auto_now and auto_now_add, ``get_db_prep_save`` encrypts and serializes), and a row that
refers to another row of the group gets that row's new id inside the statement. Afterwards the
instances are saved ones: their ids set, their foreign key ids filled in.

PostgreSQL runs every part of the statement with one snapshot and checks the foreign keys at its
end, so a child may refer to a parent inserted in the same statement; a constraint that fails
fails the whole statement (and the caller's transaction), as one of separate inserts would.
"""

from django.db import connections, router


class NewId:
    """The id ``instance`` gets in the same ``insert_together`` call, for a column that holds an id
    but is no foreign key (a ResourceEvent's resource_id). Foreign keys need nothing: a field whose
    related instance is in the group is recognized."""

    def __init__(self, instance):
        self.instance = instance


def insert_together(*instances) -> None:
    """Inserts the new (unsaved) model instances, in this order, in one statement. A row may refer
    to rows before it in the group, never after. Models with an automatic id and one table each
    (no multi-table inheritance); no signals are sent (none of the platform's models has receivers
    for save)."""
    if not instances:
        return
    alias = router.db_for_write(type(instances[0]), instance=instances[0])
    connection = connections[alias]
    quote = connection.ops.quote_name
    position = {id(instance): index for index, instance in enumerate(instances)}
    parts, params, references = [], [], []
    for index, instance in enumerate(instances):
        meta = instance._meta
        if instance.pk is not None or not instance._state.adding:
            raise ValueError(f"insert_together inserts new rows only; {meta.label} {instance.pk} is saved")
        if meta.parents or meta.auto_field is None:
            raise ValueError(f"insert_together inserts rows of one table with an automatic id, not {meta.label}'s")
        columns, values = [], []
        for field in meta.local_concrete_fields:
            if field is meta.auto_field:
                continue
            columns.append(quote(field.column))
            value = getattr(instance, field.attname)
            related = None
            if isinstance(value, NewId):
                related = value.instance
                if related.pk is not None:  # saved already: its id is known
                    setattr(instance, field.attname, related.pk)
            if related is None and field.is_relation and field.is_cached(instance):
                related = getattr(instance, field.name)
            if related is not None and related.pk is None:
                # As save() refuses an unsaved related object: its id would be lost (NULL).
                if id(related) not in position:
                    raise ValueError(f"{meta.label}.{field.name} refers to an unsaved row outside the group")
                if position[id(related)] >= index:
                    raise ValueError(f"{meta.label}.{field.name} refers to a row inserted after it")
                values.append(f"(SELECT {quote(related._meta.pk.column)} FROM new_{position[id(related)]})")
                references.append((instance, field, related))
                continue
            values.append("%s")
            params.append(field.get_db_prep_save(field.pre_save(instance, add=True), connection=connection))
        parts.append(
            f"new_{index} AS (INSERT INTO {quote(meta.db_table)} ({', '.join(columns)}) "
            f"VALUES ({', '.join(values)}) RETURNING {quote(meta.pk.column)})"
        )
    returned = ", ".join(
        f"(SELECT {quote(instance._meta.pk.column)} FROM new_{index})" for index, instance in enumerate(instances)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} SELECT {returned}", params)
        ids = cursor.fetchone()
    for instance, new_id in zip(instances, ids):
        instance.pk = new_id
        instance._state.adding = False
        instance._state.db = alias
    for instance, field, related in references:
        # Through the relation for a foreign key, as Model.save() does: its cached instance stays.
        setattr(instance, field.name if field.is_relation else field.attname, related if field.is_relation else related.pk)
