// V0001: the core ACKB schema (docs/decisions.md, schema) for Neo4j 5: a unique `id` per label, and
// indexes on the properties curators and analysts filter by.

CREATE CONSTRAINT category_id_unique IF NOT EXISTS FOR (n:Category) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT product_id_unique IF NOT EXISTS FOR (n:Product) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT sellingpoint_id_unique IF NOT EXISTS FOR (n:SellingPoint) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT creativeclip_id_unique IF NOT EXISTS FOR (n:CreativeClip) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT motion_id_unique IF NOT EXISTS FOR (n:Motion) REQUIRE n.id IS UNIQUE;
CREATE INDEX illustrates_status IF NOT EXISTS FOR ()-[r:ILLUSTRATES]-() ON (r.status);
CREATE FULLTEXT INDEX clip_caption_text IF NOT EXISTS FOR (c:CreativeClip) ON EACH [c.caption];
CREATE FULLTEXT INDEX selling_point_text IF NOT EXISTS FOR (s:SellingPoint) ON EACH [s.text];
