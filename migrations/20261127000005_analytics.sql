-- The analytics worker's rollups: one counter per (hour bucket, dimension, key, metric),
-- e.g. ('2026-11-27 10:00', 'table', 'tbl_1', 'records_created') -> 42. Updated in the
-- transaction of the event's dedup record, so a replay never counts twice.
CREATE TABLE ltf_analytics_rollups (
    bucket    timestamptz NOT NULL,
    dimension text NOT NULL CHECK (dimension IN ('table', 'form', 'service', 'automation')),
    key       text NOT NULL,
    metric    text NOT NULL,
    value     bigint NOT NULL CHECK (value >= 0),
    PRIMARY KEY (bucket, dimension, key, metric)
);
CREATE INDEX ltf_analytics_rollups_by_key ON ltf_analytics_rollups (dimension, key, bucket);
