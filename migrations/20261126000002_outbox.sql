-- The transactional outbox: every use case writes its domain rows and its events' rows in
-- one transaction; the relay publishes unsent rows in aggregateSequence order.

-- The last aggregateSequence handed out per aggregate. A writer increments its row with
-- INSERT .. ON CONFLICT DO UPDATE and holds the row lock until commit, so sequences are
-- gap-free and follow commit order per aggregate.
CREATE TABLE ltf_aggregate_sequences (
    aggregate_type text NOT NULL,
    aggregate_id   text NOT NULL,
    last_sequence  bigint NOT NULL CHECK (last_sequence >= 1),
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- One encoded event: `value` is the Confluent-framed Avro value, `headers` the Kafka
-- headers as a JSON object of name -> UTF-8 value.
CREATE TABLE ltf_outbox (
    id                 bigserial PRIMARY KEY,
    event_id           uuid NOT NULL UNIQUE,
    aggregate_type     text NOT NULL,
    aggregate_id       text NOT NULL,
    aggregate_sequence bigint NOT NULL CHECK (aggregate_sequence >= 1),
    event_type         text NOT NULL,
    topic              text NOT NULL,
    key                text NOT NULL,
    value              bytea NOT NULL,
    headers            jsonb NOT NULL CHECK (jsonb_typeof(headers) = 'object'),
    created_at         timestamptz NOT NULL DEFAULT now(),
    sent_at            timestamptz NULL,
    UNIQUE (aggregate_type, aggregate_id, aggregate_sequence)
);

-- What the relay reads: unsent rows, per aggregate in sequence order.
CREATE INDEX ltf_outbox_unsent
    ON ltf_outbox (aggregate_type, aggregate_id, aggregate_sequence)
    WHERE sent_at IS NULL;
