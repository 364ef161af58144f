// V0005: motion LoRAs. A MotionLora node is one low-rank adapter trained on the temporal attention of
// a backbone from one reference clip: its weights file (under media/), how it was trained, and the
// clip it was TRAINED_ON. A generated video that applied one links it with USED_LORA {scale}.

CREATE NODE TABLE MotionLora(
    id STRING PRIMARY KEY,
    file_path STRING,
    sha256 STRING,
    model_id STRING,
    backbone_sha256 STRING,
    clip_sha256 STRING,
    rank INT64,
    alpha DOUBLE,
    steps INT64,
    learning_rate DOUBLE,
    seed INT64,
    num_frames INT64,
    width INT64,
    height INT64,
    loss STRING,
    loss_before DOUBLE,
    loss_after DOUBLE,
    train_s DOUBLE,
    trained_at STRING,
    created_at STRING,
    updated_at STRING,
    version INT64
);

CREATE REL TABLE TRAINED_ON(FROM MotionLora TO CreativeClip);
CREATE REL TABLE USED_LORA(FROM GeneratedVideo TO MotionLora, scale DOUBLE);
