-- 0006: fewer pages written per enqueue (a single enqueue wrote six: the
-- table, three index leaves, sqlite_sequence and task_counters).
--
-- * tasks loses AUTOINCREMENT, whose sqlite_sequence row was rewritten by
--   every insert. Ids are still never reused: task_id_floor keeps the
--   largest id ever deleted (deleteTasksByID raises it) and an insert takes
--   max(max(id), floor) + 1.
-- * A task that is due when it is enqueued no longer enters
--   tasks_queued_delayed (wr_fresh = 1). A weighted claim brings such tasks
--   into its race by walking tasks_queued_fifo past wr_clock.mark, the
--   largest id it has looked at. Everything that takes a task out of the
--   queue or puts it back sets wr_fresh = 0, so a requeued or retried task
--   goes through tasks_queued_delayed as before.
--
-- The table is rebuilt. task_logs references tasks, so its rows wait in a
-- temporary table while both are recreated (dropping tasks first would
-- delete them through ON DELETE CASCADE). legacy_alter_table leaves the
-- views, which name tasks, alone during the rename.

CREATE TABLE task_id_floor (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    floor INTEGER NOT NULL -- no new task gets an id at or below this
) STRICT;
INSERT INTO task_id_floor (id, floor)
SELECT 1, max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'tasks'), 0),
              coalesce((SELECT max(id) FROM tasks), 0));

ALTER TABLE wr_clock ADD COLUMN mark INTEGER NOT NULL DEFAULT 0;
UPDATE wr_clock SET mark = (SELECT floor FROM task_id_floor);

CREATE TABLE tasks_v6 (
    id               INTEGER PRIMARY KEY, -- never reused: see task_id_floor
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
    retry_cap_ms     INTEGER,
    wr_fresh         INTEGER NOT NULL DEFAULT 0 -- 1: enqueued due, not yet seen by a weighted claim (past wr_clock.mark)
) STRICT;

INSERT INTO tasks_v6 (id, type, priority, payload, requirements, status, attempts, max_attempts, run_after,
    wr_key, lease_expires_at, lease_owner, lease_token, created_at, updated_at, claimed_at, started_at,
    finished_at, last_error, idempotency_key, result, progress_percent, progress_current, progress_total,
    progress_message, cancel_requested, retry_base_ms, retry_cap_ms, wr_fresh)
SELECT id, type, priority, payload, requirements, status, attempts, max_attempts, run_after,
    wr_key, lease_expires_at, lease_owner, lease_token, created_at, updated_at, claimed_at, started_at,
    finished_at, last_error, idempotency_key, result, progress_percent, progress_current, progress_total,
    progress_message, cancel_requested, retry_base_ms, retry_cap_ms, 0
FROM tasks;

CREATE TEMP TABLE task_logs_v5 AS SELECT * FROM task_logs;
DROP TABLE task_logs;
DROP TABLE tasks;
PRAGMA legacy_alter_table = ON;
ALTER TABLE tasks_v6 RENAME TO tasks;
PRAGMA legacy_alter_table = OFF;

CREATE TABLE task_logs (
    id      INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    level   TEXT    NOT NULL,
    message TEXT    NOT NULL,
    details TEXT             CHECK (details IS NULL OR json_valid(details))
) STRICT;
INSERT INTO task_logs (id, task_id, at, level, message, details)
SELECT id, task_id, at, level, message, details FROM temp.task_logs_v5;
DROP TABLE temp.task_logs_v5;
CREATE INDEX task_logs_task ON task_logs (task_id, id);

CREATE INDEX tasks_queued_fifo ON tasks (id, run_after, type) WHERE status = 'queued';
CREATE INDEX tasks_queued_priority ON tasks (priority, id, run_after, type) WHERE status = 'queued';
CREATE INDEX tasks_queued_wr ON tasks (wr_key, type) WHERE status = 'queued' AND wr_key IS NOT NULL;
CREATE INDEX tasks_queued_delayed ON tasks (run_after) WHERE status = 'queued' AND wr_key IS NULL AND wr_fresh = 0;
CREATE INDEX tasks_leased ON tasks (lease_expires_at) WHERE status = 'leased';
CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX tasks_finished ON tasks (finished_at, type, status, created_at, started_at, claimed_at)
    WHERE finished_at IS NOT NULL;
CREATE INDEX tasks_failed ON tasks (finished_at) WHERE status = 'failed';
