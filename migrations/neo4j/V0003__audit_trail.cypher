// V0003: the curation audit trail for Neo4j 5: a unique `id` per AuditEvent (it sorts in
// time order, for keyset paging newest first) and indexes on what the audit view filters by.

CREATE CONSTRAINT auditevent_id_unique IF NOT EXISTS FOR (n:AuditEvent) REQUIRE n.id IS UNIQUE;
CREATE INDEX auditevent_entity IF NOT EXISTS FOR (n:AuditEvent) ON (n.entity_id);
CREATE INDEX auditevent_actor IF NOT EXISTS FOR (n:AuditEvent) ON (n.actor);
