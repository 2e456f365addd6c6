-- 0001: tasks, workers, task logs. Times are integer milliseconds since the
-- Unix epoch (UTC); JSON columns hold text checked by json_valid.

CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: ids are never reused after a purge
    type             TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 100,
    payload          TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
    requirements     TEXT             CHECK (requirements IS NULL OR json_valid(requirements)), -- NULL = none
    status           TEXT    NOT NULL CHECK (status IN ('queued', 'leased', 'completed', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 5,
    run_after        INTEGER NOT NULL,
    wr_key           REAL,             -- weighted-random race key; NULL while not due (see strategy.go)
    lease_expires_at INTEGER,
    lease_owner      TEXT,
    lease_token      INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    claimed_at       INTEGER,
    started_at       INTEGER,
    finished_at      INTEGER,
    last_error       TEXT,
    idempotency_key  TEXT,
    result           TEXT              CHECK (result IS NULL OR json_valid(result)),
    progress_percent REAL,
    progress_current INTEGER,
    progress_total   INTEGER,
    progress_message TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    retry_base_ms    INTEGER,
    retry_cap_ms     INTEGER
) STRICT;

-- Claim indexes are partial (queued rows only), so finished rows cost nothing
-- and each strategy's order is an index walk, never a sort. run_after and type
-- are carried so ineligible rows are skipped without reading the table.
CREATE INDEX tasks_queued_fifo ON tasks (id, run_after, type) WHERE status = 'queued';
CREATE INDEX tasks_queued_priority ON tasks (priority, id, run_after, type) WHERE status = 'queued';
CREATE INDEX tasks_queued_wr ON tasks (wr_key, type) WHERE status = 'queued' AND wr_key IS NOT NULL;
-- Queued tasks outside the weighted race (not due yet, or not yet promoted by
-- a weighted claim): promotion into the race and the "next due" wake-up time.
CREATE INDEX tasks_queued_delayed ON tasks (run_after) WHERE status = 'queued' AND wr_key IS NULL;
CREATE INDEX tasks_leased ON tasks (lease_expires_at) WHERE status = 'leased';
CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE workers (
    id           TEXT    PRIMARY KEY,
    host         TEXT    NOT NULL DEFAULT '',
    pid          INTEGER NOT NULL DEFAULT 0,
    strategy     TEXT    NOT NULL,
    capabilities TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(capabilities)),
    types        TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(types)),
    lease_ms     INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    stopped_at   INTEGER
) STRICT;

CREATE TABLE task_logs (
    id      INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    level   TEXT    NOT NULL,
    message TEXT    NOT NULL,
    details TEXT             CHECK (details IS NULL OR json_valid(details))
) STRICT;
CREATE INDEX task_logs_task ON task_logs (task_id, id);
