-- What the outbox relay needs beyond the outbox itself.

-- Wake relays when new rows commit: one notification per inserting statement (PostgreSQL
-- delivers it at commit, and folds repeats within one transaction).
CREATE FUNCTION ltf_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ltf_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER ltf_outbox_notify
    AFTER INSERT ON ltf_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION ltf_outbox_notify();

-- Pruning finds sent rows past the retention without scanning the unsent ones.
CREATE INDEX ltf_outbox_sent ON ltf_outbox (sent_at) WHERE sent_at IS NOT NULL;
