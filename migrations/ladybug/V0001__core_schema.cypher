// V0001: the core ACKB schema (docs/decisions.md, schema) for Ladybug: one node table per label, one
// relationship table per type. Every node has a string primary key `id`.

CREATE NODE TABLE Category(
    id STRING PRIMARY KEY,
    name STRING,
    description STRING,
    created_at STRING,
    updated_at STRING,
    version INT64
);

CREATE NODE TABLE Product(
    id STRING PRIMARY KEY,
    name STRING,
    brand STRING,
    description STRING,
    created_at STRING,
    updated_at STRING,
    version INT64
);

CREATE NODE TABLE SellingPoint(
    id STRING PRIMARY KEY,
    text STRING,
    created_at STRING,
    updated_at STRING,
    version INT64
);

CREATE NODE TABLE CreativeClip(
    id STRING PRIMARY KEY,
    caption STRING,
    tags STRING[],
    video_path STRING,
    duration_s DOUBLE,
    fps DOUBLE,
    width INT64,
    height INT64,
    num_frames INT64,
    motion_dx DOUBLE,
    motion_dy DOUBLE,
    motion_magnitude DOUBLE,
    motion_divergence DOUBLE,
    motion_curl DOUBLE,
    motion_jitter DOUBLE,
    created_at STRING,
    updated_at STRING,
    version INT64
);

CREATE NODE TABLE Motion(
    id STRING PRIMARY KEY,
    name STRING,
    description STRING,
    created_at STRING,
    updated_at STRING,
    version INT64
);

CREATE REL TABLE IN_CATEGORY(FROM Product TO Category);
CREATE REL TABLE HAS_SELLING_POINT(FROM Product TO SellingPoint);
CREATE REL TABLE ILLUSTRATES(FROM CreativeClip TO SellingPoint, status STRING, score DOUBLE, annotator STRING, updated_at STRING);
CREATE REL TABLE FEATURES(FROM CreativeClip TO Product);
CREATE REL TABLE HAS_MOTION(FROM CreativeClip TO Motion);
