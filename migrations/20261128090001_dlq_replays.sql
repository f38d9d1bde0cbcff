-- What `ltf dlq replay` re-published: one row per dead letter (group, DLQ topic,
-- partition, offset). A later `replay` skips letters found here unless `--again`, which
-- bumps `replays` and the last-replay columns.
CREATE TABLE ltf_dlq_replays (
    consumer_group    text NOT NULL,
    dlq_topic         text NOT NULL,
    dlq_partition     int NOT NULL,
    dlq_offset        bigint NOT NULL,
    -- The `event-id` header, when the letter carried one.
    event_id          text NULL,
    error_class       text NOT NULL,
    -- Where the last replay went: `<event topic>.<group>.retry`.
    retry_topic       text NOT NULL,
    retry_partition   int NOT NULL,
    retry_offset      bigint NOT NULL,
    replays           int NOT NULL DEFAULT 1 CHECK (replays >= 1),
    first_replayed_at timestamptz NOT NULL DEFAULT now(),
    last_replayed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, dlq_topic, dlq_partition, dlq_offset)
);
