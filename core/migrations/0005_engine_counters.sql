-- 0005: the engine keeps task_counters itself (core/counters_sqlite.go):
-- each transaction sums its status changes and applies them with one
-- statement per counter row at commit. The per-row triggers of 0004 cost a
-- quarter of a single enqueue and two fifths of a claim and complete.
-- Writes made outside the library no longer move the counters;
-- `prismq-queue maintain --recount` rebuilds the depth rows from the tasks.

DROP TRIGGER tasks_count_insert;
DROP TRIGGER tasks_count_delete;
DROP TRIGGER tasks_count_update;
DROP TRIGGER tasks_count_total;
