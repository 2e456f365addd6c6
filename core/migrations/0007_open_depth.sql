-- 0007: a claim no longer writes task_counters.
--
-- The depth rows counted queued and leased tasks apart, so every claim and
-- every release moved two counter rows: one more statement and one more
-- page in the WAL for each such transaction (a third of the cost of a claim
-- plus a complete). Now one depth row, status 'open', counts the tasks that
-- are queued or leased; the engine moves it when a task is enqueued, ends,
-- is retried or purged, and not when it is claimed, released or requeued.
-- How many of them are leased is counted from the tasks_leased index
-- (bounded by the work in flight, not by the depth of the queue).
--
-- task_depth gives the old shape (type, priority, status, n) with queued and
-- leased apart again; queue_depth and queue_depth_by_priority read it.

INSERT INTO task_counters (type, priority, kind, status, n)
SELECT type, priority, 'depth', 'open', sum(n) FROM task_counters
WHERE kind = 'depth' AND status IN ('queued', 'leased') GROUP BY type, priority
ON CONFLICT (type, priority, kind, status) DO UPDATE SET n = n + excluded.n;
DELETE FROM task_counters WHERE kind = 'depth' AND status IN ('queued', 'leased');

CREATE VIEW task_depth AS
WITH leased AS (
    SELECT type, priority, count(*) AS n FROM tasks INDEXED BY tasks_leased
    WHERE status = 'leased' GROUP BY type, priority
)
SELECT type, priority, status, n FROM task_counters WHERE kind = 'depth' AND status != 'open'
UNION ALL
SELECT c.type, c.priority, 'queued', c.n - coalesce(l.n, 0)
FROM task_counters AS c LEFT JOIN leased AS l ON l.type = c.type AND l.priority = c.priority
WHERE c.kind = 'depth' AND c.status = 'open'
UNION ALL
SELECT type, priority, 'leased', n FROM leased;

DROP VIEW queue_depth;
CREATE VIEW queue_depth AS
SELECT type, status, sum(n) AS tasks FROM task_depth WHERE n > 0 GROUP BY type, status;

DROP VIEW queue_depth_by_priority;
CREATE VIEW queue_depth_by_priority AS
SELECT status, priority, sum(n) AS tasks FROM task_depth WHERE n > 0 GROUP BY status, priority;
