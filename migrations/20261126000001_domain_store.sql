-- The LaTeChforce domain store: tables and their records, forms and their submissions,
-- external connections. One migrations folder serves every crate (DESIGN.md, "Database").

-- A user-defined table. `fields` holds the field definitions, in order:
-- [{"name": "title", "type": "text"}, ...] with type among
-- text, number, integer, boolean, date, json, link.
CREATE TABLE ltf_tables (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    fields     jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(fields) = 'array'),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A record of a table. `version` starts at 1 and grows by one with every change; record
-- events carry it as recordVersion.
CREATE TABLE ltf_records (
    id         text PRIMARY KEY,
    table_id   text NOT NULL REFERENCES ltf_tables (id),
    fields     jsonb NOT NULL CHECK (jsonb_typeof(fields) = 'object'),
    version    bigint NOT NULL CHECK (version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    created_by text NULL
);
CREATE INDEX ltf_records_by_table ON ltf_records (table_id);

-- A form; its submissions may become records of `table_id`.
CREATE TABLE ltf_forms (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    table_id   text NULL REFERENCES ltf_tables (id),
    fields     jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(fields) = 'array'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ltf_form_submissions (
    id           text PRIMARY KEY,
    form_id      text NOT NULL REFERENCES ltf_forms (id),
    data         jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object'),
    submitted_by text NULL,
    submitted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ltf_form_submissions_by_form ON ltf_form_submissions (form_id);

-- An authenticated connection to an external service. `credentials` is stored encrypted
-- by the application (never in clear text); NULL until authenticated.
CREATE TABLE ltf_connections (
    id          text PRIMARY KEY,
    service     text NOT NULL,
    user_id     text NOT NULL,
    credentials bytea NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
