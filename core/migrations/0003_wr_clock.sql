-- 0003: the clock of the weighted-random race (see strategy.go): the key of
-- the latest weighted claim. Tasks that enter the race draw their keys from
-- it. Drawing them from the smallest key still queued (as before) made the
-- first task to enter an empty race win it every time.

CREATE TABLE wr_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    t  REAL    NOT NULL
) STRICT;

INSERT INTO wr_clock (id, t)
SELECT 1, coalesce(min(wr_key), 0) FROM tasks WHERE status = 'queued' AND wr_key IS NOT NULL;
