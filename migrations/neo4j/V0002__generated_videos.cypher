// V0002: provenance of generated videos (docs/decisions.md, schema) for Neo4j 5: a unique `id` per GeneratedVideo.
// Relationships (REFERENCED {rank}, GENERATED_FOR) need no schema in Neo4j.

CREATE CONSTRAINT generatedvideo_id_unique IF NOT EXISTS FOR (n:GeneratedVideo) REQUIRE n.id IS UNIQUE;
