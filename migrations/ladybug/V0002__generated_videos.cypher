// V0002: provenance of generated videos (docs/decisions.md, schema): a GeneratedVideo node table, the clips it
// referenced (with their rank, 1 = best) and the selling point it was generated for. The design calls that
// type FOR; FOR is a reserved word in Ladybug's parser, so it is GENERATED_FOR.

CREATE NODE TABLE GeneratedVideo(
    id STRING PRIMARY KEY,
    video_path STRING,
    model_id STRING,
    prompt STRING,
    negative_prompt STRING,
    seed INT64,
    parameters STRING,
    timings STRING,
    created_at STRING,
    updated_at STRING,
    version INT64
);

CREATE REL TABLE REFERENCED(FROM GeneratedVideo TO CreativeClip, rank INT64);
CREATE REL TABLE GENERATED_FOR(FROM GeneratedVideo TO SellingPoint);
