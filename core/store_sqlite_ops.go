package core

// The SQL of the operations side: metrics, maintenance, bulk purge and
// requeue, backup and restore, doctor checks. Like store_sqlite.go it is the
// only place these statements live; the engine files (metrics.go,
// maintenance.go, backup.go, doctor.go) call the methods below.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"modernc.org/sqlite"
)

// --- metrics reads ---------------------------------------------------------------

// depthRows reads the engine-kept counters through the view task_depth
// (migration 0007): a few counter rows and the leased tasks, whatever the
// depth of the queue. Files at an older schema version (OpenAtVersion)
// read task_counters as it was (versions 4 to 6) or count the tasks.
func (s *sqliteStore) depthRows(ctx context.Context) ([]DepthRow, error) {
	q := `SELECT status, type, priority, n FROM task_depth WHERE n > 0 ORDER BY status, type, priority`
	switch {
	case s.schema < 4:
		q = `SELECT status, type, priority, count(*) FROM tasks GROUP BY status, type, priority ORDER BY 1, 2, 3`
	case s.schema < 7:
		q = `SELECT status, type, priority, n FROM task_counters
			WHERE kind = 'depth' AND n > 0 ORDER BY status, type, priority`
	}
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return nil, mapSQLiteErr(fmt.Errorf("metrics: depth: %w", err))
	}
	defer rows.Close()
	var out []DepthRow
	for rows.Next() {
		var r DepthRow
		var status string
		if err := rows.Scan(&status, &r.Type, &r.Priority, &r.Count); err != nil {
			return nil, mapSQLiteErr(err)
		}
		r.Status = Status(status)
		out = append(out, r)
	}
	return out, mapSQLiteErr(rows.Err())
}

type totalRow struct {
	Type, Event string
	N           int64
}

// totalRows reads the cumulative counters (task_counters, kind total) by type and event.
func (s *sqliteStore) totalRows(ctx context.Context) ([]totalRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT type, status, sum(n) FROM task_counters
		WHERE kind = 'total' GROUP BY type, status`)
	if err != nil {
		return nil, mapSQLiteErr(fmt.Errorf("metrics: totals: %w", err))
	}
	defer rows.Close()
	var out []totalRow
	for rows.Next() {
		var r totalRow
		if err := rows.Scan(&r.Type, &r.Event, &r.N); err != nil {
			return nil, mapSQLiteErr(err)
		}
		out = append(out, r)
	}
	return out, mapSQLiteErr(rows.Err())
}

// oldestEligible is the lowest-id queued task that is due: the FIFO claim's
// index walk, so it costs what a FIFO claim costs.
func (s *sqliteStore) oldestEligible(ctx context.Context, now time.Time) (id int64, created, runAfter time.Time, err error) {
	var c, r int64
	err = s.db.QueryRowContext(ctx, `SELECT id, created_at, run_after FROM tasks INDEXED BY tasks_queued_fifo
		WHERE status = 'queued' AND run_after <= ? ORDER BY id LIMIT 1`, toMillis(now)).Scan(&id, &c, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, time.Time{}, mapSQLiteErr(fmt.Errorf("metrics: oldest eligible: %w", err))
	}
	return id, fromMillis(c), fromMillis(r), nil
}

type finishedRow struct {
	Type                                string
	Status                              Status
	Created, Started, Claimed, Finished int64
	HasStarted, HasClaimed              bool
}

// finishedSample reads the tasks finished in (from, to], newest first, at
// most limit, from the covering index tasks_finished (no table reads).
func (s *sqliteStore) finishedSample(ctx context.Context, from, to time.Time, limit int) ([]finishedRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT type, status, created_at, started_at, claimed_at, finished_at
		FROM tasks INDEXED BY tasks_finished
		WHERE finished_at IS NOT NULL AND finished_at > ? AND finished_at <= ?
		ORDER BY finished_at DESC LIMIT ?`, toMillis(from), toMillis(to), limit)
	if err != nil {
		return nil, mapSQLiteErr(fmt.Errorf("metrics: latency sample: %w", err))
	}
	defer rows.Close()
	out := make([]finishedRow, 0, 256)
	for rows.Next() {
		var r finishedRow
		var status string
		var started, claimed sql.NullInt64
		if err := rows.Scan(&r.Type, &status, &r.Created, &started, &claimed, &r.Finished); err != nil {
			return nil, mapSQLiteErr(err)
		}
		r.Status = Status(status)
		r.Started, r.HasStarted = started.Int64, started.Valid
		r.Claimed, r.HasClaimed = claimed.Int64, claimed.Valid
		out = append(out, r)
	}
	return out, mapSQLiteErr(rows.Err())
}

// recentFailures reads the latest dead letters (index tasks_failed).
func (s *sqliteStore) recentFailures(ctx context.Context, limit int) ([]FailureInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, type, attempts, last_error, finished_at
		FROM tasks INDEXED BY tasks_failed WHERE status = 'failed' ORDER BY finished_at DESC LIMIT ?`, limit)
	if err != nil {
		return nil, mapSQLiteErr(fmt.Errorf("metrics: recent failures: %w", err))
	}
	defer rows.Close()
	out := []FailureInfo{}
	for rows.Next() {
		var f FailureInfo
		var msg sql.NullString
		var fin sql.NullInt64
		if err := rows.Scan(&f.TaskID, &f.Type, &f.Attempts, &msg, &fin); err != nil {
			return nil, mapSQLiteErr(err)
		}
		f.Error, f.FinishedAt = msg.String, nullTime(fin)
		out = append(out, f)
	}
	return out, mapSQLiteErr(rows.Err())
}

// workerRows reads the registry with each worker's lease and running count
// (one pass over the leased tasks, not one per worker).
func (s *sqliteStore) workerRows(ctx context.Context) ([]WorkerMetrics, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT w.id, w.host, w.pid, w.strategy, w.capabilities, w.types,
		w.lease_ms, w.started_at, w.heartbeat_at, w.stopped_at, coalesce(r.n, 0)
		FROM workers w LEFT JOIN (
			SELECT lease_owner, count(*) AS n FROM tasks INDEXED BY tasks_leased
			WHERE status = 'leased' GROUP BY lease_owner
		) r ON r.lease_owner = w.id
		ORDER BY w.id`)
	if err != nil {
		return nil, mapSQLiteErr(fmt.Errorf("metrics: workers: %w", err))
	}
	defer rows.Close()
	out := []WorkerMetrics{}
	for rows.Next() {
		var w WorkerMetrics
		var strategy, caps, types string
		var leaseMs, started, hb int64
		var stopped sql.NullInt64
		if err := rows.Scan(&w.ID, &w.Host, &w.PID, &strategy, &caps, &types, &leaseMs, &started, &hb, &stopped,
			&w.Running); err != nil {
			return nil, mapSQLiteErr(err)
		}
		w.Strategy = Strategy(strategy)
		w.Capabilities = json.RawMessage(caps)
		_ = json.Unmarshal([]byte(types), &w.Types)
		if w.Types == nil {
			w.Types = []string{}
		}
		w.Lease = time.Duration(leaseMs) * time.Millisecond
		w.StartedAt, w.HeartbeatAt, w.StoppedAt = fromMillis(started), fromMillis(hb), nullTime(stopped)
		out = append(out, w)
	}
	return out, mapSQLiteErr(rows.Err())
}

// expiredLeases counts leased tasks whose lease ended before 'before' (index tasks_leased).
func (s *sqliteStore) expiredLeases(ctx context.Context, before time.Time) (n int64, oldest time.Time, err error) {
	var o sql.NullInt64
	err = s.db.QueryRowContext(ctx, `SELECT count(*), min(lease_expires_at) FROM tasks INDEXED BY tasks_leased
		WHERE status = 'leased' AND lease_expires_at < ?`, toMillis(before)).Scan(&n, &o)
	if err != nil {
		return 0, time.Time{}, mapSQLiteErr(fmt.Errorf("expired leases: %w", err))
	}
	return n, nullTime(o), nil
}

// --- database facts ----------------------------------------------------------------

type dbFacts struct {
	PageSize, PageCount, FreelistCount int64
	AutoVacuum                         int64 // 0 none, 1 full, 2 incremental
	JournalMode                        string
}

func (s *sqliteStore) facts(ctx context.Context) (dbFacts, error) {
	var f dbFacts
	c, err := s.db.Conn(ctx)
	if err != nil {
		return f, mapSQLiteErr(err)
	}
	defer c.Close()
	for _, p := range []struct {
		q   string
		dst any
	}{
		{`PRAGMA page_size`, &f.PageSize}, {`PRAGMA page_count`, &f.PageCount},
		{`PRAGMA freelist_count`, &f.FreelistCount}, {`PRAGMA auto_vacuum`, &f.AutoVacuum},
		{`PRAGMA journal_mode`, &f.JournalMode},
	} {
		if err := c.QueryRowContext(ctx, p.q).Scan(p.dst); err != nil {
			return f, mapSQLiteErr(fmt.Errorf("%s: %w", p.q, err))
		}
	}
	f.JournalMode = strings.ToLower(f.JournalMode)
	return f, nil
}

// pragmaValues reads the current value of each named pragma on one read
// connection (which was opened with the configured pragmas).
func (s *sqliteStore) pragmaValues(ctx context.Context, names []string) (map[string]string, error) {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return nil, mapSQLiteErr(err)
	}
	defer c.Close()
	out := make(map[string]string, len(names))
	for _, n := range names {
		if !isIdent(n) {
			continue
		}
		var v sql.NullString
		err := c.QueryRowContext(ctx, `PRAGMA `+n).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			out[n] = ""
			continue
		}
		if err != nil {
			return nil, mapSQLiteErr(fmt.Errorf("PRAGMA %s: %w", n, err))
		}
		out[n] = v.String
	}
	return out, nil
}

// integrityCheck runs PRAGMA quick_check or integrity_check and returns its
// messages; a healthy database gives ["ok"].
func (s *sqliteStore) integrityCheck(ctx context.Context, full bool, maxErrors int) ([]string, error) {
	return integrityOn(ctx, s.db, full, maxErrors)
}

type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func integrityOn(ctx context.Context, db queryer, full bool, maxErrors int) ([]string, error) {
	pragma := "quick_check"
	if full {
		pragma = "integrity_check"
	}
	if maxErrors < 1 {
		maxErrors = 100
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`PRAGMA %s(%d)`, pragma, maxErrors))
	if err != nil {
		return nil, mapSQLiteErr(fmt.Errorf("%s: %w", pragma, err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return nil, mapSQLiteErr(err)
		}
		out = append(out, m)
	}
	return out, mapSQLiteErr(rows.Err())
}

// --- maintenance -------------------------------------------------------------------

// checkpoint runs PRAGMA wal_checkpoint(mode) on a read connection (a
// checkpoint cannot run inside the writer's transaction).
func (s *sqliteStore) checkpoint(ctx context.Context, mode CheckpointMode) (CheckpointResult, error) {
	r := CheckpointResult{Mode: mode}
	c, err := s.db.Conn(ctx)
	if err != nil {
		return r, mapSQLiteErr(err)
	}
	defer c.Close()
	var busy int64
	err = c.QueryRowContext(ctx, `PRAGMA wal_checkpoint(`+strings.ToUpper(string(mode))+`)`).
		Scan(&busy, &r.WALFrames, &r.Checkpointed)
	if err != nil {
		return r, mapSQLiteErr(fmt.Errorf("checkpoint: %w", err))
	}
	r.Busy = busy != 0
	return r, nil
}

// vacuumFull rewrites the file (VACUUM), switching it to incremental
// auto-vacuum on the way. It needs as much free disk as the database and
// holds the write lock throughout.
func (s *sqliteStore) vacuumFull(ctx context.Context) error {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return mapSQLiteErr(err)
	}
	defer c.Close()
	// auto_vacuum set on this connection is what VACUUM writes into the new file.
	if _, err := c.ExecContext(ctx, `PRAGMA auto_vacuum = INCREMENTAL`); err != nil {
		return mapSQLiteErr(fmt.Errorf("vacuum: %w", err))
	}
	if _, err := c.ExecContext(ctx, `VACUUM`); err != nil {
		return mapSQLiteErr(fmt.Errorf("vacuum: %w", err))
	}
	return nil
}

// enableIncrementalVacuum switches a database that has just been created to
// auto_vacuum=INCREMENTAL. The pragma only takes effect before the first
// table exists or through VACUUM, and the WAL pragma of the connection has
// already written the file header, so a new (nearly empty) database is
// vacuumed once: instant at that size.
func (s *sqliteStore) enableIncrementalVacuum(ctx context.Context) error {
	var av int64
	if err := s.db.QueryRowContext(ctx, `PRAGMA auto_vacuum`).Scan(&av); err != nil {
		return mapSQLiteErr(err)
	}
	if av == 2 {
		return nil
	}
	return s.vacuumFull(ctx)
}

// incrementalVacuum frees up to pages free pages (PRAGMA incremental_vacuum)
// in the writer's transaction; it returns how many it freed.
func (s *sqliteStore) incrementalVacuum(tx writeTx, pages int) (int64, error) {
	var before, after int64
	if err := s.queryRow(tx, `PRAGMA freelist_count`).Scan(&before); err != nil {
		return 0, mapSQLiteErr(err)
	}
	if before == 0 {
		return 0, nil
	}
	if _, err := s.exec(tx, fmt.Sprintf(`PRAGMA incremental_vacuum(%d)`, pages)); err != nil {
		return 0, fmt.Errorf("incremental vacuum: %w", err)
	}
	if err := s.queryRow(tx, `PRAGMA freelist_count`).Scan(&after); err != nil {
		return 0, mapSQLiteErr(err)
	}
	return before - after, nil
}

// optimize refreshes the planner statistics where they are stale, reading
// at most about 1000 rows per index (PRAGMA analysis_limit) so that it stays
// quick on a large queue.
func (s *sqliteStore) recountDepth(tx writeTx) (int64, error) {
	if !s.keepsCounters() {
		return 0, nil // version 4 files count with triggers
	}
	if _, err := s.exec(tx, `CREATE TEMP TABLE recount AS
		SELECT type, priority, CASE WHEN status IN ('queued', 'leased') THEN '`+depthOpen+`' ELSE status END AS status,
			count(*) AS n FROM tasks GROUP BY 1, 2, 3`); err != nil {
		return 0, fmt.Errorf("recount: %w", err)
	}
	defer func() { _, _ = s.wconn.ExecContext(context.Background(), `DROP TABLE IF EXISTS temp.recount`) }()
	r, err := s.exec(tx, `INSERT INTO task_counters (type, priority, kind, status, n)
		SELECT type, priority, 'depth', status, n FROM temp.recount WHERE true
		ON CONFLICT (type, priority, kind, status) DO UPDATE SET n = excluded.n WHERE n != excluded.n`)
	if err != nil {
		return 0, fmt.Errorf("recount: %w", err)
	}
	fixed, _ := r.RowsAffected()
	r, err = s.exec(tx, `UPDATE task_counters SET n = 0 WHERE kind = 'depth' AND n != 0
		AND (type, priority, status) NOT IN (SELECT type, priority, status FROM temp.recount)`)
	if err != nil {
		return 0, fmt.Errorf("recount: %w", err)
	}
	zeroed, _ := r.RowsAffected()
	return fixed + zeroed, nil
}

func (s *sqliteStore) optimize(tx writeTx) error {
	if _, err := s.exec(tx, `PRAGMA analysis_limit = 1000`); err != nil {
		return fmt.Errorf("optimize: %w", err)
	}
	// 0x10002: consider every table, not only those this connection queried.
	if _, err := s.exec(tx, `PRAGMA optimize = 0x10002`); err != nil {
		return fmt.Errorf("optimize: %w", err)
	}
	return nil
}

// deleteFinishedBatch deletes up to limit tasks in statuses that finished
// before cutoff, and their logs, walking tasks_finished from cursor (a
// finished_at in ms). It returns the counts and the next cursor.
func (s *sqliteStore) deleteFinishedBatch(tx writeTx, cutoff time.Time, statuses []Status, cursor int64, limit int) (
	tasks, logs, next int64, err error) {
	st, _ := json.Marshal(statuses)
	rows, err := s.query(tx, `SELECT id, finished_at FROM tasks INDEXED BY tasks_finished
		WHERE finished_at IS NOT NULL AND finished_at >= ?1 AND finished_at < ?2
		AND status IN (SELECT value FROM json_each(?3)) ORDER BY finished_at LIMIT ?4`,
		cursor, toMillis(cutoff), string(st), limit)
	if err != nil {
		return 0, 0, cursor, fmt.Errorf("retention: %w", err)
	}
	idList := make([]int64, 0, limit)
	next = cursor
	for rows.Next() {
		var id, fin int64
		if err := rows.Scan(&id, &fin); err != nil {
			rows.Close()
			return 0, 0, cursor, mapSQLiteErr(err)
		}
		idList = append(idList, id)
		next = fin
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, cursor, mapSQLiteErr(err)
	}
	if len(idList) == 0 {
		return 0, 0, next, nil
	}
	logs, tasks, err = s.deleteTasksByID(tx, idList)
	return tasks, logs, next, err
}

// deleteTasksByID deletes tasks and their logs. It first raises
// task_id_floor to the largest id, so no later task reuses a deleted id.
func (s *sqliteStore) deleteTasksByID(tx writeTx, idList []int64) (logs, tasks int64, err error) {
	if _, err := s.exec(tx, `UPDATE task_id_floor SET floor = (SELECT max(id) FROM tasks)
		WHERE id = 1 AND floor < (SELECT max(id) FROM tasks)`); err != nil {
		return 0, 0, fmt.Errorf("delete tasks: keep the id floor: %w", err)
	}
	b, _ := json.Marshal(idList)
	r, err := s.exec(tx, `DELETE FROM task_logs WHERE task_id IN (SELECT value FROM json_each(?))`, string(b))
	if err != nil {
		return 0, 0, fmt.Errorf("delete logs: %w", err)
	}
	logs, _ = r.RowsAffected()
	rows, err := s.query(tx, `DELETE FROM tasks WHERE id IN (SELECT value FROM json_each(?)) RETURNING type, priority, status`, string(b))
	if err != nil {
		return 0, 0, fmt.Errorf("delete tasks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ, status string
		var prio int64
		if err := rows.Scan(&typ, &prio, &status); err != nil {
			return 0, 0, mapSQLiteErr(fmt.Errorf("delete tasks: %w", err))
		}
		tx.(*sqliteTx).transition(typ, prio, Status(status), "", false)
		tasks++
	}
	if err := rows.Err(); err != nil {
		return 0, 0, mapSQLiteErr(fmt.Errorf("delete tasks: %w", err))
	}
	return logs, tasks, nil
}

// pruneWorkers deletes registry rows of workers stopped, or silent, since
// before 'before' that hold no lease.
func (s *sqliteStore) pruneWorkers(tx writeTx, before time.Time) (int64, error) {
	r, err := s.exec(tx, `DELETE FROM workers
		WHERE coalesce(stopped_at, heartbeat_at) < ?1
		AND NOT EXISTS (SELECT 1 FROM tasks t INDEXED BY tasks_leased
		                WHERE t.status = 'leased' AND t.lease_owner = workers.id)`, toMillis(before))
	if err != nil {
		return 0, fmt.Errorf("prune workers: %w", err)
	}
	n, _ := r.RowsAffected()
	return n, nil
}

// claimMaintenanceSlot records a scheduled maintenance run starting now
// unless another process started one less than interval ago; it reports
// whether this caller should run.
func (s *sqliteStore) claimMaintenanceSlot(tx writeTx, now time.Time, interval time.Duration) (bool, error) {
	r, err := s.exec(tx, `UPDATE ops_state SET at = ?1 WHERE name = 'maintenance' AND (at <= ?1 - ?2 OR at > ?1)`,
		toMillis(now), interval.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("maintenance slot: %w", err)
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// --- bulk purge and requeue ----------------------------------------------------------

// filterWhere is the WHERE clause of a TaskFilter; one statement text for
// every filter (unset parts are NULL), so the writer prepares it once.
// ?1 statuses, ?2 types (JSON arrays), ?3 created before, ?4 finished before,
// ?5 error substring, ?6 id cursor.
const filterWhere = `(?1 IS NULL OR status IN (SELECT value FROM json_each(?1)))
	AND (?2 IS NULL OR type IN (SELECT value FROM json_each(?2)))
	AND (?3 IS NULL OR created_at < ?3)
	AND (?4 IS NULL OR (finished_at IS NOT NULL AND finished_at < ?4))
	AND (?5 IS NULL OR instr(coalesce(last_error, ''), ?5) > 0)
	AND id > ?6`

func filterArgs(f TaskFilter, cursor int64) []any {
	var st, ty any
	if len(f.Statuses) > 0 {
		b, _ := json.Marshal(f.Statuses)
		st = string(b)
	}
	if len(f.Types) > 0 {
		b, _ := json.Marshal(f.Types)
		ty = string(b)
	}
	return []any{st, ty, nullMillis(f.CreatedBefore), nullMillis(f.FinishedBefore), nullString(f.ErrorContains), cursor}
}

// countMatching counts tasks matching f (at most limit when limit > 0) and
// returns the first few ids.
func (s *sqliteStore) countMatching(ctx context.Context, f TaskFilter, limit int64, sample int) (int64, []int64, error) {
	if limit <= 0 {
		limit = -1
	}
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM tasks WHERE `+filterWhere+` LIMIT ?7)`,
		append(filterArgs(f, 0), limit)...).Scan(&n)
	if err != nil {
		return 0, nil, mapSQLiteErr(fmt.Errorf("count: %w", err))
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM tasks WHERE `+filterWhere+` ORDER BY id LIMIT ?7`,
		append(filterArgs(f, 0), sample)...)
	if err != nil {
		return 0, nil, mapSQLiteErr(fmt.Errorf("count: %w", err))
	}
	defer rows.Close()
	idList := []int64{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return 0, nil, mapSQLiteErr(err)
		}
		idList = append(idList, id)
	}
	return n, idList, mapSQLiteErr(rows.Err())
}

// matchingIDs selects up to limit ids matching f after cursor, in the writer's transaction.
func (s *sqliteStore) matchingIDs(tx writeTx, f TaskFilter, cursor int64, limit int) ([]int64, error) {
	rows, err := s.query(tx, `SELECT id FROM tasks WHERE `+filterWhere+` ORDER BY id LIMIT ?7`,
		append(filterArgs(f, cursor), limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]int64, 0, limit)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, mapSQLiteErr(err)
		}
		out = append(out, id)
	}
	return out, mapSQLiteErr(rows.Err())
}

// requeueByID puts failed or cancelled tasks back to queued, as retry does
// for one task.
func (s *sqliteStore) requeueByID(tx writeTx, idList []int64, now time.Time) (int64, error) {
	b, _ := json.Marshal(idList)
	// The statuses they leave, for the counters: RETURNING sees new values only.
	rows, err := s.query(tx, `SELECT type, priority, status FROM tasks
		WHERE id IN (SELECT value FROM json_each(?1)) AND status IN ('failed', 'cancelled')`, string(b))
	if err != nil {
		return 0, fmt.Errorf("requeue: %w", err)
	}
	type left struct {
		typ, status string
		priority    int64
	}
	var moved []left
	for rows.Next() {
		var l left
		if err := rows.Scan(&l.typ, &l.priority, &l.status); err != nil {
			rows.Close()
			return 0, mapSQLiteErr(fmt.Errorf("requeue: %w", err))
		}
		moved = append(moved, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, mapSQLiteErr(fmt.Errorf("requeue: %w", err))
	}
	r, err := s.exec(tx, `UPDATE tasks SET status = 'queued', attempts = 0, run_after = ?1, updated_at = ?1,
		finished_at = NULL, cancel_requested = 0, result = NULL, lease_expires_at = NULL, wr_key = NULL, wr_fresh = 0
		WHERE id IN (SELECT value FROM json_each(?2)) AND status IN ('failed', 'cancelled')`, toMillis(now), string(b))
	if err != nil {
		return 0, fmt.Errorf("requeue: %w", err)
	}
	for _, l := range moved {
		tx.(*sqliteTx).transition(l.typ, l.priority, Status(l.status), StatusQueued, false)
	}
	n, _ := r.RowsAffected()
	return n, nil
}

// --- backup and restore --------------------------------------------------------------

type backuper interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

type restorer interface {
	NewRestore(srcURI string) (*sqlite.Backup, error)
}

// stepBackup copies every page, stepPages at a time, reporting progress
// after each step; it checks ctx between steps.
func stepBackup(ctx context.Context, b *sqlite.Backup, stepPages int, progress func(done, total int)) error {
	for {
		more, err := b.Step(int32(stepPages))
		if err != nil {
			_ = b.Finish()
			return err
		}
		total := b.PageCount()
		if progress != nil {
			progress(total-b.Remaining(), total)
		}
		if !more {
			return b.Finish()
		}
		if err := ctx.Err(); err != nil {
			_ = b.Finish()
			return err
		}
	}
}

// backupTo copies the database into dst (a new file) with SQLite's online
// backup API. The source connection holds one read transaction for the
// whole copy: in WAL mode writers go on, and the copy is the snapshot of the
// moment the transaction began (the backup never restarts, however busy
// the queue). The copy is switched to journal_mode=DELETE so that it is one
// self-contained file.
func (s *sqliteStore) backupTo(ctx context.Context, dst string, stepPages int, progress func(done, total int)) error {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return mapSQLiteErr(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `BEGIN`); err != nil {
		return mapSQLiteErr(fmt.Errorf("backup: begin: %w", err))
	}
	defer func() { _, _ = c.ExecContext(context.Background(), `ROLLBACK`) }()
	var v int
	// The first read starts the snapshot.
	if err := c.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&v); err != nil {
		return mapSQLiteErr(fmt.Errorf("backup: %w", err))
	}
	err = c.Raw(func(dc any) error {
		bk, ok := dc.(backuper)
		if !ok {
			return fmt.Errorf("the sqlite driver has no backup API")
		}
		b, err := bk.NewBackup(dst)
		if err != nil {
			return err
		}
		return stepBackup(ctx, b, stepPages, progress)
	})
	if err != nil {
		return mapSQLiteErr(fmt.Errorf("backup: copy: %w", err))
	}
	return nil
}

// inspectDatabaseFile opens path on its own, switches it to
// journal_mode=DELETE when asked, runs an integrity check and reads its
// schema version and task count.
func inspectDatabaseFile(ctx context.Context, path string, toDelete, full bool) (info backupInfo, err error) {
	db, err := sql.Open("sqlite", buildDSN(path, []string{"busy_timeout=5000"}))
	if err != nil {
		return info, fmt.Errorf("%w: open %s: %v", ErrIO, path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if toDelete {
		var m string
		if err := db.QueryRowContext(ctx, `PRAGMA journal_mode = DELETE`).Scan(&m); err != nil {
			return info, mapSQLiteErr(fmt.Errorf("journal mode: %w", err))
		}
	}
	info.Integrity, err = integrityOn(ctx, db, full, 100)
	if err != nil {
		return info, err
	}
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&info.SchemaVersion); err != nil {
		return info, fmt.Errorf("%w: %s is not a queue database: %v", ErrSchema, path, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM tasks`).Scan(&info.Tasks); err != nil {
		return info, fmt.Errorf("%w: %s is not a queue database: %v", ErrSchema, path, err)
	}
	return info, nil
}

type backupInfo struct {
	Integrity     []string
	SchemaVersion int
	Tasks         int64
}

// restoreInto copies the database file src over target through SQLite (the
// backup API in reverse), after proving that no other connection has
// target open: a connection in EXCLUSIVE locking mode with no busy wait
// switches target out of WAL (SQLite refuses while anyone else has it open,
// and the switch folds and deletes an existing -wal) and takes the
// exclusive lock, which it keeps until the copy is done. Nothing can open
// the file half-restored, and no -wal or -shm of the old database survives
// to be replayed onto the new one.
func restoreInto(ctx context.Context, src, target string, stepPages int, progress func(done, total int)) (
	staleRemoved []string, err error) {
	db, err := sql.Open("sqlite", buildDSN(target, []string{"busy_timeout=0"}))
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrIO, target, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, mapSQLiteErr(fmt.Errorf("restore: open %s: %w", target, err))
	}
	defer c.Close()
	inUse := func(step string, err error) error {
		if isBusy(err) {
			return fmt.Errorf("%w: %s is in use by another connection or process; close every queue and worker "+
				"that uses it, then restore again", ErrBusy, target)
		}
		return mapSQLiteErr(fmt.Errorf("restore: %s: %w", step, err))
	}
	var mode string
	if err := c.QueryRowContext(ctx, `PRAGMA locking_mode = EXCLUSIVE`).Scan(&mode); err != nil {
		return nil, inUse("locking mode", err)
	}
	if err := c.QueryRowContext(ctx, `PRAGMA journal_mode = DELETE`).Scan(&mode); err != nil {
		return nil, inUse("leave WAL", err)
	}
	if !strings.EqualFold(mode, "delete") {
		return nil, fmt.Errorf("%w: %s is in use by another process (it stays in %s mode)", ErrBusy, target, mode)
	}
	// In rollback mode a reader holds a shared lock only while it reads:
	// BEGIN EXCLUSIVE fails at once if one is reading now.
	if _, err := c.ExecContext(ctx, `BEGIN EXCLUSIVE`); err != nil {
		return nil, inUse("lock", err)
	}
	if _, err := c.ExecContext(ctx, `COMMIT`); err != nil {
		return nil, inUse("lock", err)
	}
	// The exclusive lock proves nobody has the file open, so a -wal or -shm
	// still there was left by a process that died: exclusive mode uses
	// neither, and they must not outlive the old database.
	for _, f := range []string{target + "-wal", target + "-shm"} {
		removed, err := removeIfExists(f)
		if err != nil {
			return staleRemoved, fmt.Errorf("%w: remove stale %s: %v", ErrIO, f, err)
		}
		if removed {
			staleRemoved = append(staleRemoved, f)
		}
	}
	err = c.Raw(func(dc any) error {
		rs, ok := dc.(restorer)
		if !ok {
			return fmt.Errorf("the sqlite driver has no backup API")
		}
		b, err := rs.NewRestore(src)
		if err != nil {
			return err
		}
		return stepBackup(ctx, b, stepPages, progress)
	})
	if err != nil {
		return staleRemoved, mapSQLiteErr(fmt.Errorf("restore: copy: %w", err))
	}
	// The copy carries the backup's header (rollback journal). Back to
	// normal locking; the next read drops the lock and deletes the journal
	// that exclusive mode kept.
	if err := c.QueryRowContext(ctx, `PRAGMA locking_mode = NORMAL`).Scan(&mode); err != nil {
		return staleRemoved, mapSQLiteErr(fmt.Errorf("restore: unlock: %w", err))
	}
	var n int64
	if err := c.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&n); err != nil {
		return staleRemoved, mapSQLiteErr(fmt.Errorf("restore: unlock: %w", err))
	}
	return staleRemoved, nil
}

// removeIfExists deletes path; a missing file is fine.
func removeIfExists(path string) (bool, error) {
	err := os.Remove(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// maintenanceLastRun is when the last scheduled maintenance pass started (zero: never).
func (s *sqliteStore) maintenanceLastRun(ctx context.Context) (time.Time, error) {
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT at FROM ops_state WHERE name = 'maintenance'`).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) || at == 0 {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, mapSQLiteErr(err)
	}
	return fromMillis(at), nil
}
