-- 0004: what operators need without scanning the tasks table.
--
-- task_counters holds, per type and priority, the number of tasks now in
-- each status (kind 'depth') and how many ever completed, failed, were
-- cancelled or were retried (kind 'total', monotonic: deletions leave it).
-- Triggers keep it, so metrics read a few rows instead of counting a
-- million tasks. Its key starts with type and priority, so the rows one
-- transition touches sit together: one extra page per transaction, not one
-- per row. tasks_finished (covering) serves throughput and latency over a
-- window, and retention; tasks_failed the recent failures. ops_state lets
-- the processes that schedule maintenance agree on who runs it when. The
-- views at the end are for people who read the file with a SQLite browser.

CREATE TABLE task_counters (
    type     TEXT    NOT NULL,
    priority INTEGER NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('depth', 'total')),
    status   TEXT    NOT NULL, -- depth: a task status; total: completed, failed, cancelled or retried
    n        INTEGER NOT NULL, -- depth rows reaching 0 stay (cheaper than deleting them); readers skip them
    PRIMARY KEY (type, priority, kind, status)
) STRICT, WITHOUT ROWID;

-- Totals start from the finished tasks present at the upgrade.
INSERT INTO task_counters (type, priority, kind, status, n)
SELECT type, priority, 'depth', status, count(*) FROM tasks GROUP BY type, priority, status
UNION ALL
SELECT type, priority, 'total', status, count(*) FROM tasks
WHERE status IN ('completed', 'failed', 'cancelled') GROUP BY type, priority, status;

CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks
BEGIN
    INSERT INTO task_counters (type, priority, kind, status, n) VALUES (new.type, new.priority, 'depth', new.status, 1)
    ON CONFLICT (type, priority, kind, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks
BEGIN
    UPDATE task_counters SET n = n - 1
    WHERE type = old.type AND priority = old.priority AND kind = 'depth' AND status = old.status;
END;

-- The WHEN clauses keep renewals, progress and other updates that leave the
-- columns alone free of any extra write, and claims free of the totals.
CREATE TRIGGER tasks_count_update AFTER UPDATE OF status, type, priority ON tasks
WHEN old.status IS NOT new.status OR old.type IS NOT new.type OR old.priority IS NOT new.priority
BEGIN
    UPDATE task_counters SET n = n - 1
    WHERE type = old.type AND priority = old.priority AND kind = 'depth' AND status = old.status;
    INSERT INTO task_counters (type, priority, kind, status, n) VALUES (new.type, new.priority, 'depth', new.status, 1)
    ON CONFLICT (type, priority, kind, status) DO UPDATE SET n = n + 1;
END;

-- A retry is a leased task going back to queued with its attempt counted (a
-- failure with attempts left or an expired lease); a release gives its
-- attempt back, so it is not a retry.
CREATE TRIGGER tasks_count_total AFTER UPDATE OF status ON tasks
WHEN old.status IS NOT new.status
 AND (new.status IN ('completed', 'failed', 'cancelled')
      OR (old.status = 'leased' AND new.status = 'queued' AND new.attempts = old.attempts))
BEGIN
    INSERT INTO task_counters (type, priority, kind, status, n)
    VALUES (new.type, new.priority, 'total', CASE WHEN new.status = 'queued' THEN 'retried' ELSE new.status END, 1)
    ON CONFLICT (type, priority, kind, status) DO UPDATE SET n = n + 1;
END;

CREATE INDEX tasks_finished ON tasks (finished_at, type, status, created_at, started_at, claimed_at)
    WHERE finished_at IS NOT NULL;
CREATE INDEX tasks_failed ON tasks (finished_at) WHERE status = 'failed';

CREATE TABLE ops_state (
    name TEXT    PRIMARY KEY,
    at   INTEGER NOT NULL -- milliseconds; for 'maintenance': when the last scheduled run started
) STRICT;
INSERT INTO ops_state (name, at) VALUES ('maintenance', 0);

-- Views. Times are rendered as UTC ISO 8601 text; "now" is the reader's clock.

DROP VIEW queue_depth;
CREATE VIEW queue_depth AS
SELECT type, status, sum(n) AS tasks FROM task_counters WHERE kind = 'depth' AND n > 0 GROUP BY type, status;

CREATE VIEW queue_depth_by_priority AS
SELECT status, priority, sum(n) AS tasks FROM task_counters WHERE kind = 'depth' AND n > 0 GROUP BY status, priority;

CREATE VIEW task_totals AS
SELECT type, status AS event, sum(n) AS tasks FROM task_counters WHERE kind = 'total' GROUP BY type, status;

CREATE VIEW task_throughput AS
SELECT strftime('%Y-%m-%dT%H:%M:00Z', finished_at / 1000, 'unixepoch') AS minute, type, status, count(*) AS tasks
FROM tasks INDEXED BY tasks_finished
WHERE finished_at IS NOT NULL AND finished_at >= ((julianday('now') - 2440587.5) * 86400000.0) - 3600000
GROUP BY 1, 2, 3;

CREATE VIEW task_latency AS
SELECT id, type, status, attempts,
       started_at - created_at AS wait_ms,
       finished_at - claimed_at AS run_ms,
       strftime('%Y-%m-%dT%H:%M:%fZ', finished_at / 1000.0, 'unixepoch') AS finished_at
FROM tasks WHERE finished_at IS NOT NULL;

CREATE VIEW dead_letters AS
SELECT id, type, priority, attempts, max_attempts, last_error,
       strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch') AS created_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', finished_at / 1000.0, 'unixepoch') AS finished_at,
       payload
FROM tasks WHERE status = 'failed';

CREATE VIEW expired_leases AS
SELECT id, type, lease_owner, attempts, max_attempts,
       strftime('%Y-%m-%dT%H:%M:%fZ', lease_expires_at / 1000.0, 'unixepoch') AS lease_expires_at,
       round((julianday('now') - 2440587.5) * 86400.0 - lease_expires_at / 1000.0, 3) AS expired_for_s
FROM tasks
WHERE status = 'leased' AND lease_expires_at < (julianday('now') - 2440587.5) * 86400000.0;

-- state: gone when stopped or silent for ten leases, stale when silent for
-- longer than one lease (its leases are expiring), else active.
CREATE VIEW workers_readable AS
SELECT w.id, w.host, w.pid, w.strategy, w.capabilities, w.types, w.lease_ms,
       strftime('%Y-%m-%dT%H:%M:%fZ', w.started_at / 1000.0, 'unixepoch') AS started_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', w.heartbeat_at / 1000.0, 'unixepoch') AS heartbeat_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', w.stopped_at / 1000.0, 'unixepoch') AS stopped_at,
       round((julianday('now') - 2440587.5) * 86400.0 - w.heartbeat_at / 1000.0, 3) AS heartbeat_age_s,
       CASE
           WHEN w.stopped_at IS NOT NULL THEN 'gone'
           WHEN (julianday('now') - 2440587.5) * 86400000.0 - w.heartbeat_at > 10 * w.lease_ms THEN 'gone'
           WHEN (julianday('now') - 2440587.5) * 86400000.0 - w.heartbeat_at > w.lease_ms THEN 'stale'
           ELSE 'active'
       END AS state,
       (SELECT count(*) FROM tasks t WHERE t.status = 'leased' AND t.lease_owner = w.id) AS running
FROM workers w;
