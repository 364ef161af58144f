// V0005: motion LoRAs for Neo4j 5: a unique `id` per MotionLora. Relationships (TRAINED_ON,
// USED_LORA {scale}) need no schema in Neo4j.

CREATE CONSTRAINT motionlora_id_unique IF NOT EXISTS FOR (n:MotionLora) REQUIRE n.id IS UNIQUE;
