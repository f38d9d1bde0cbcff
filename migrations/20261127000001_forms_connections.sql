-- Forms map their fields onto their table's fields; connections keep the non-secret facts
-- of their token beside the encrypted credentials.

-- Form field name -> field of `table_id` its value is stored in. CreateForm checks that
-- every key is a field of the form and every value a field of the table of a compatible
-- type.
ALTER TABLE ltf_forms
    ADD COLUMN field_mapping jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(field_mapping) = 'object');

-- When the stored access token expires (NULL: the service did not say) and the scope it
-- grants: readable without decrypting `credentials`, so a worker can find tokens to
-- refresh. A connection is identified by its id: a user may connect several accounts of
-- one service; re-authenticating a connection replaces its credentials.
ALTER TABLE ltf_connections
    ADD COLUMN token_expires_at timestamptz NULL,
    ADD COLUMN scope text NULL;
CREATE INDEX ltf_connections_by_user ON ltf_connections (user_id, service);
