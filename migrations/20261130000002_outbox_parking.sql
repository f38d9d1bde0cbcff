-- A row Kafka refuses for good is parked: the relay leaves it (and the later rows of its
-- aggregate, which wait behind it) until an operator retries it or skips it
-- (`ltf outbox parked`). A skip is a recorded gap in the aggregate's sequence: who, when,
-- why. Skipped rows are never published and never pruned.
ALTER TABLE ltf_outbox
    ADD COLUMN parked_at   timestamptz NULL,
    ADD COLUMN park_reason text NULL,
    ADD COLUMN skipped_at  timestamptz NULL,
    ADD COLUMN skipped_by  text NULL,
    ADD COLUMN skip_reason text NULL;
