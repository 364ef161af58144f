// V0004: selling-point relations for Neo4j 5. SAME_CLAIM links two selling points that make the
// same claim in other words; its status is filtered on as ILLUSTRATES' is, so it gets an index.

CREATE INDEX same_claim_status IF NOT EXISTS FOR ()-[r:SAME_CLAIM]-() ON (r.status);
