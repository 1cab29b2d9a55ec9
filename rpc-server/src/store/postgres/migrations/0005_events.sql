-- The outbox: alert levels and users' own thresholds, events, webhook
-- deliveries and the ledger's default threshold.

-- `user/<sid>` or `node/<name>`; level 0 ok, 1 low, 2 overdrawn (users), 1 stale (nodes).
CREATE TABLE alerts (
    subject           text PRIMARY KEY,
    level             smallint NOT NULL,
    low_balance_cents bigint
);

CREATE TABLE events (
    seq        bigint PRIMARY KEY,
    kind       text NOT NULL,
    created_ms bigint NOT NULL,
    subject    text NOT NULL,
    data       text NOT NULL
);
CREATE INDEX events_by_kind ON events (kind, seq);

-- A row once a delivery of the event to the URL was tried.
-- status 0 pending, 1 delivered, 2 failed (given up).
CREATE TABLE deliveries (
    seq              bigint NOT NULL REFERENCES events (seq),
    url              text NOT NULL,
    status           smallint NOT NULL,
    attempts         integer NOT NULL,
    first_attempt_ms bigint NOT NULL,
    next_attempt_ms  bigint NOT NULL,
    last_status      integer,
    last_error       text,
    done_ms          bigint,
    PRIMARY KEY (seq, url)
);

-- The first event seq not yet delivered or given up, per webhook URL.
CREATE TABLE webhook_cursors (
    url text PRIMARY KEY,
    seq bigint NOT NULL
);

CREATE TABLE ledger_settings (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);
