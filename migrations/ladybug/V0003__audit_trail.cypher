// V0003: the curation audit trail for Ladybug: one AuditEvent node per change an annotator
// made (kb/audit.py). Not linked to the changed node, so a deleted record's history remains. `before`
// and `after` are JSON objects stored as strings. The id `<at>-<hex>` sorts in time order.

CREATE NODE TABLE AuditEvent(
    id STRING PRIMARY KEY,
    at STRING,
    actor STRING,
    action STRING,
    entity_label STRING,
    entity_id STRING,
    before STRING,
    after STRING
);
