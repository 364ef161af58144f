// V0004: selling-point relations for Ladybug. SAME_CLAIM links two selling points (usually of
// different products) that make the same claim in other words, e.g. "leak-proof lid" and "no spills
// in your bag". Like ILLUSTRATES it carries a status (proposed / approved / rejected), a score and
// the annotator who judged it. It is undirected in meaning and stored once per pair, from the
// smaller id to the larger (docs/ackb-format.md).

CREATE REL TABLE SAME_CLAIM(FROM SellingPoint TO SellingPoint, status STRING, score DOUBLE, annotator STRING, updated_at STRING);
