-- 0002: read-only views for people who inspect the queue with a SQLite
-- browser: readable UTC times and the depth per status and type.

CREATE VIEW tasks_readable AS
SELECT id, type, priority, status, attempts, max_attempts,
       strftime('%Y-%m-%dT%H:%M:%fZ', run_after / 1000.0, 'unixepoch') AS run_after,
       strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch') AS created_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', finished_at / 1000.0, 'unixepoch') AS finished_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', lease_expires_at / 1000.0, 'unixepoch') AS lease_expires_at,
       lease_owner, last_error, idempotency_key, payload, result, progress_percent
FROM tasks;

CREATE VIEW queue_depth AS
SELECT type, status, count(*) AS tasks FROM tasks GROUP BY type, status;
