-- The ledger on PostgreSQL. Tables mirror the redb tables of the same names
-- (see store/tables.rs and store/codec.rs): money is BIGINT cents, counters and
-- sequence numbers live in the one ledger_meta row, which every write
-- transaction locks first, so writes apply one at a time across replicas.

CREATE TABLE ledger_meta (
    id                  smallint PRIMARY KEY CHECK (id = 1),
    total_users         bigint NOT NULL,
    -- The sum of every balance: NUMERIC, so that it never overflows.
    total_balance_cents numeric(40, 0) NOT NULL,
    overdrawn_users     bigint NOT NULL,
    consumed_records    bigint NOT NULL,
    pending_records     bigint NOT NULL,
    rejected_items      bigint NOT NULL,
    consumed_seq        bigint NOT NULL,
    payment_seq         bigint NOT NULL,
    rejected_seq        bigint NOT NULL,
    run_seq             bigint NOT NULL,
    user_seq            bigint NOT NULL,
    group_seq           bigint NOT NULL,
    source_seq          bigint NOT NULL,
    clean_head          text,
    -- runs::RunTotals as JSON: figures over every run, pruned ones included.
    run_totals          jsonb NOT NULL
);
INSERT INTO ledger_meta VALUES
    (1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, '{}');

CREATE TABLE users (
    user_sid       text COLLATE "C" PRIMARY KEY,
    user_id        bigint NOT NULL UNIQUE,
    display_name   text,
    email          text,
    created_at_ms  bigint NOT NULL,
    balance_cents  bigint NOT NULL,
    paid_cents     bigint NOT NULL CHECK (paid_cents >= 0),
    consumed_cents bigint NOT NULL CHECK (consumed_cents >= 0),
    CHECK (balance_cents = paid_cents - consumed_cents)
);

CREATE TABLE payments (
    payment_id    text PRIMARY KEY,
    seq           bigint NOT NULL UNIQUE,
    user_sid      text NOT NULL REFERENCES users (user_sid),
    amount_cents  bigint NOT NULL CHECK (amount_cents > 0),
    kind          text NOT NULL,
    reference     text,
    created_at_ms bigint NOT NULL
);
CREATE INDEX payments_by_user ON payments (user_sid, seq);

-- Where and when a run of consumed records was applied.
CREATE TABLE consumed_sources (
    source_id     bigint PRIMARY KEY,
    node_name     text NOT NULL,
    commit_sha    text NOT NULL,
    file_path     text NOT NULL,
    applied_at_ms bigint NOT NULL
);

-- The exactly-once index: a record is applied only by inserting its key here,
-- in the transaction that debits its user.
CREATE TABLE consumed (
    idempotency_key text PRIMARY KEY,
    seq             bigint NOT NULL UNIQUE,
    user_sid        text NOT NULL REFERENCES users (user_sid),
    cost_cents      bigint NOT NULL CHECK (cost_cents >= 0),
    source_id       bigint NOT NULL REFERENCES consumed_sources (source_id)
);
CREATE INDEX consumed_by_user ON consumed (user_sid, seq);

-- Records held until their user is registered.
CREATE TABLE pending (
    idempotency_key text COLLATE "C" PRIMARY KEY,
    user_sid        text COLLATE "C" NOT NULL,
    node_name       text NOT NULL,
    cost_cents      bigint NOT NULL,
    commit_sha      text NOT NULL,
    file_path       text NOT NULL,
    blob_id         text NOT NULL,
    record_index    bigint NOT NULL,
    first_seen_ms   bigint NOT NULL,
    rejected_id     bigint NOT NULL
);
CREATE INDEX pending_by_user ON pending (user_sid, idempotency_key);

CREATE TABLE rejected (
    rejected_id     bigint PRIMARY KEY,
    -- codec::reason_code: explicit codes, never reused.
    reason          smallint NOT NULL,
    node_name       text NOT NULL,
    file_path       text NOT NULL,
    blob_id         text NOT NULL,
    commit_sha      text NOT NULL,
    record_index    bigint,
    idempotency_key text,
    user_sid        text,
    cost_cents      bigint,
    detail          text NOT NULL,
    existing        jsonb,
    first_seen_ms   bigint NOT NULL,
    fingerprint     bytea,
    -- How many records a file's summary item stands for.
    record_count    bigint
);

CREATE TABLE rejected_fingerprints (
    fingerprint bytea PRIMARY KEY,
    rejected_id bigint NOT NULL
);

CREATE TABLE file_tallies (
    node_name  text NOT NULL,
    file_path  text NOT NULL,
    blob_id    text NOT NULL,
    next_index bigint NOT NULL,
    stored     bigint NOT NULL,
    omitted    bigint NOT NULL,
    by_kind    jsonb NOT NULL,
    summary_id bigint NOT NULL,
    PRIMARY KEY (node_name, file_path, blob_id)
);

CREATE TABLE nodes (
    node_name              text COLLATE "C" PRIMARY KEY,
    tree_id                text,
    last_commit_sha        text,
    last_run_at_ms         bigint,
    records_consumed_total bigint NOT NULL,
    -- codec::status_code.
    status                 smallint NOT NULL,
    last_error             text
);

CREATE TABLE consumed_files (
    node_name text NOT NULL,
    file_path text NOT NULL,
    blob_id   text NOT NULL,
    PRIMARY KEY (node_name, file_path)
);

-- codec::RunRow as JSON, and the replica that ran the pass.
CREATE TABLE runs (
    run_id  bigint PRIMARY KEY,
    summary jsonb NOT NULL,
    replica text
);
