package core

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

func init() {
	// prismq_req_ok(requirements, capabilities): the eligibility test of the
	// SPEC, in Go so that it is the same function the tests call.
	sqlite.MustRegisterDeterministicScalarFunction("prismq_req_ok", 2,
		func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			reqs, _ := args[0].(string)
			caps, _ := args[1].(string)
			if requirementsMatchJSON(reqs, caps) {
				return int64(1), nil
			}
			return int64(0), nil
		})
}

// sqliteStore implements store over one SQLite file: a pool of read
// connections and one write connection owned by the writer goroutine.
type sqliteStore struct {
	db          *sql.DB   // readers
	wconn       *sql.Conn // the writer's connection
	pollConn    *sql.Conn // PRAGMA data_version polling
	pollMu      sync.Mutex
	busyTimeout time.Duration
	busyRetries *atomic.Int64
	stmts       map[string]*sql.Stmt // the writer connection's prepared statements
	schema      int                  // the file's schema version, set by migrate

	// Background checkpoints: commit adds up the WAL frames the writer
	// wrote and, every ckptPages of them (the wal_autocheckpoint pragma),
	// wakes checkpointLoop.
	ckptPages int
	walPages  int // pages since the last wake-up; writer only (one leader at a time)
	restart   int // pages since the writer's last own checkpoint; writer only
	ckptConn  *sql.Conn
	ckptWake  chan struct{}
	ckptDone  chan struct{}
	ckptRuns  atomic.Int64
	// ckptMu is held by a checkpoint of this process while it runs, so that
	// the writer's own checkpoint waits for a background one to end instead
	// of finding the checkpointer lock busy.
	ckptMu sync.Mutex
}

type sqliteTx struct {
	ctx context.Context
	// deltas are the status changes of this transaction, applied to
	// task_counters at commit (counters_sqlite.go); mark is their number
	// when the current savepoint began.
	deltas []counterDelta
	mark   int
}

func (*sqliteTx) writeTx() {}

// taskColumns is the column list every task read returns, in scanTask order.
const taskColumns = `id, type, priority, payload, requirements, status, attempts, max_attempts,
	run_after, lease_expires_at, lease_owner, lease_token, created_at, updated_at, claimed_at,
	started_at, finished_at, last_error, idempotency_key, result, progress_percent,
	progress_current, progress_total, progress_message, cancel_requested, retry_base_ms, retry_cap_ms`

// dsn builds the modernc DSN: every pragma applied on each new connection.
func buildDSN(path string, pragmas []string) string {
	v := url.Values{}
	for _, p := range pragmas {
		name, val, _ := strings.Cut(p, "=")
		v.Add("_pragma", fmt.Sprintf("%s(%s)", name, val))
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + v.Encode()
}

func openSQLiteStore(ctx context.Context, o Options, busyRetries *atomic.Int64) (*sqliteStore, error) {
	db, err := sql.Open("sqlite", buildDSN(o.Path, o.pragmaList()))
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrIO, o.Path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(0)
	s := &sqliteStore{db: db, busyRetries: busyRetries, stmts: map[string]*sql.Stmt{}}
	s.busyTimeout = o.busyTimeout()
	s.wconn, err = db.Conn(ctx)
	if err == nil {
		// The writer retries SQLITE_BUSY itself (beginWrite), with short sleeps
		// and a count of retries, instead of SQLite's millisecond schedule.
		_, err = s.wconn.ExecContext(ctx, "PRAGMA busy_timeout=0")
	}
	if err == nil {
		s.pollConn, err = db.Conn(ctx)
	}
	// Checkpoints run in the background, not inside a commit: the writer's
	// own wal_autocheckpoint is 0, and checkpointLoop runs one each time
	// the writer has written wal_autocheckpoint pages (frames) since the
	// last. SQLite's own rule checkpoints after every commit once the WAL
	// holds that many frames, which is every commit when processes sharing
	// the file keep the WAL from restarting; this one checkpoints once per
	// that many pages this process wrote, and no commit waits for it.
	if n, _ := strconv.Atoi(o.Pragmas["wal_autocheckpoint"]); err == nil && n > 0 {
		_, err = s.wconn.ExecContext(ctx, "PRAGMA wal_autocheckpoint=0")
		if err == nil {
			s.ckptConn, err = db.Conn(ctx)
		}
		if err == nil {
			s.ckptPages = n
			s.ckptWake, s.ckptDone = make(chan struct{}, 1), make(chan struct{})
			go s.checkpointLoop()
		}
	}
	if err != nil {
		_ = s.close()
		return nil, mapSQLiteErr(fmt.Errorf("open %s: %w", o.Path, err))
	}
	return s, nil
}

func (s *sqliteStore) checkpoints() int64 { return s.ckptRuns.Load() }

// checkpointLoop runs a PASSIVE checkpoint each time commit wakes it. A
// passive checkpoint never waits for locks: it copies what no reader still
// needs, and the next one copies the rest. Errors (a busy checkpointer lock
// held by another process) only mean that one is skipped.
func (s *sqliteStore) checkpointLoop() {
	defer close(s.ckptDone)
	for range s.ckptWake {
		s.ckptMu.Lock()
		_, err := s.ckptConn.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		s.ckptMu.Unlock()
		if err == nil {
			s.ckptRuns.Add(1)
		}
	}
}

func (s *sqliteStore) close() error {
	var errs []error
	if s.ckptWake != nil {
		close(s.ckptWake)
		<-s.ckptDone
	}
	if s.ckptConn != nil {
		errs = append(errs, s.ckptConn.Close())
	}
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	if s.wconn != nil {
		errs = append(errs, s.wconn.Close())
	}
	if s.pollConn != nil {
		errs = append(errs, s.pollConn.Close())
	}
	errs = append(errs, s.db.Close())
	return errors.Join(errs...)
}

// mapSQLiteErr turns driver errors into engine errors (ErrBusy, ErrIO, ErrSchema).
func mapSQLiteErr(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%w: %v", ErrBusy, err)
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY,
			sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
			return fmt.Errorf("%w: %v", ErrIO, err)
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("%w: %v", ErrSchema, err)
		}
	}
	return err
}

func isBusy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code() & 0xff
		return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
	}
	return false
}

// --- transactions -------------------------------------------------------------

// beginWrite starts the write transaction, retrying while another
// connection holds the write lock. SQLite's locks are not fair: a process
// that commits in a loop can win the lock again and again. So the busy
// timeout only counts time in which nobody committed: while other
// connections are making progress (PRAGMA data_version moves), waiting is
// normal load and the deadline moves on. ErrBusy means the lock was held for
// busy_timeout without a single commit.
func (s *sqliteStore) beginWrite(ctx context.Context) (writeTx, error) {
	deadline := time.Now().Add(s.busyTimeout)
	sleep := 20 * time.Microsecond
	version := int64(-1)
	for {
		_, err := s.execStmt(ctx, "BEGIN IMMEDIATE")
		if err == nil {
			return &sqliteTx{ctx: ctx}, nil
		}
		if !isBusy(err) {
			return nil, mapSQLiteErr(fmt.Errorf("begin: %w", err))
		}
		s.busyRetries.Add(1)
		if version < 0 {
			version = s.writerDataVersion(ctx)
		}
		if time.Now().After(deadline) {
			v := s.writerDataVersion(ctx)
			if v < 0 || v == version {
				return nil, fmt.Errorf("%w: the database stayed locked for %v without a commit", ErrBusy, s.busyTimeout)
			}
			version, deadline = v, time.Now().Add(s.busyTimeout)
		}
		// Jittered exponential sleep (base 20 us doubling to 1 ms, each
		// drawn from half to one and a half times the base): short enough to
		// find the lock free between the commits of a busy process.
		time.Sleep(sleep/2 + rand.N(sleep))
		sleep = min(2*sleep, time.Millisecond)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// writerDataVersion reads PRAGMA data_version on the writer connection: it
// changes whenever another connection commits. -1 when it cannot be read.
func (s *sqliteStore) writerDataVersion(ctx context.Context) int64 {
	var v int64
	if err := s.wconn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
		return -1
	}
	return v
}

func (s *sqliteStore) txExec(tx writeTx, q string) error {
	_, err := s.exec(tx, q)
	return err
}

func (s *sqliteStore) savepoint(tx writeTx) error {
	tx.(*sqliteTx).mark = len(tx.(*sqliteTx).deltas)
	return s.txExec(tx, "SAVEPOINT op")
}
func (s *sqliteStore) releaseSavepoint(tx writeTx) error {
	return s.txExec(tx, "RELEASE op")
}
func (s *sqliteStore) rollbackSavepoint(tx writeTx) error {
	if err := s.txExec(tx, "ROLLBACK TO op"); err != nil {
		return err
	}
	t := tx.(*sqliteTx)
	t.deltas = t.deltas[:t.mark]
	return s.txExec(tx, "RELEASE op")
}
func (s *sqliteStore) commit(tx writeTx) error {
	if err := s.flushCounters(tx.(*sqliteTx)); err != nil {
		_ = s.rollback(tx)
		return mapSQLiteErr(fmt.Errorf("commit: %w", err))
	}
	_, err := s.execStmt(context.Background(), "COMMIT")
	if err != nil {
		_ = s.rollback(tx)
		return mapSQLiteErr(fmt.Errorf("commit: %w", err))
	}
	if s.ckptPages > 0 {
		n := s.pagesWritten()
		s.walPages += n
		s.restart += n
		switch {
		case s.restart >= restartEvery*s.ckptPages:
			// A checkpoint that runs beside the writer never catches up
			// with it, and the WAL only restarts from its beginning after
			// one did: so now and then the writer runs one itself, with
			// nothing written meanwhile. The background ones have copied
			// most pages already; this one copies the rest.
			// It waits for a background checkpoint of this process that
			// is running (it has little left to copy: nothing is written
			// meanwhile). When another process's checkpoint holds the
			// lock, or this one could not copy every frame (a reader
			// still needs them), it tries again after another ckptPages
			// pages rather than at every commit.
			var busy, logged, copied int
			s.ckptMu.Lock()
			err := s.wconn.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logged, &copied)
			s.ckptMu.Unlock()
			s.walPages, s.restart = 0, 0
			if err != nil || busy != 0 || copied < logged {
				s.restart = (restartEvery - 1) * s.ckptPages
			}
		case s.walPages >= s.ckptPages:
			s.walPages = 0
			select {
			case s.ckptWake <- struct{}{}:
			default: // one is pending already
			}
		}
	}
	return nil
}

// restartEvery: the writer checkpoints itself once per this many
// background checkpoints' worth of pages, so that the WAL can restart.
const restartEvery = 8

// pagesWritten returns (and resets) how many pages the writer's connection
// has written to the WAL since the last call: SQLITE_DBSTATUS_CACHE_WRITE.
func (s *sqliteStore) pagesWritten() int {
	n := 0
	_ = s.wconn.Raw(func(dc any) error {
		if st, ok := dc.(sqlite.DBStatus); ok {
			n, _, _ = st.Status(sqlite.DBStatusCacheWrite, true)
		}
		return nil
	})
	return n
}
func (s *sqliteStore) rollback(tx writeTx) error {
	if t, ok := tx.(*sqliteTx); ok {
		t.deltas = t.deltas[:0]
	}
	_, err := s.wconn.ExecContext(context.Background(), "ROLLBACK")
	if err != nil && strings.Contains(err.Error(), "no transaction is active") {
		return nil
	}
	return mapSQLiteErr(err)
}

// stmt returns the writer connection's prepared statement for q, preparing
// it on first use. Only the writer goroutine calls it, so the cache needs no lock.
func (s *sqliteStore) stmt(q string) (*sql.Stmt, error) {
	if st, ok := s.stmts[q]; ok {
		return st, nil
	}
	st, err := s.wconn.PrepareContext(context.Background(), q)
	if err != nil {
		return nil, mapSQLiteErr(fmt.Errorf("prepare: %w", err))
	}
	s.stmts[q] = st
	return st, nil
}

// row is a *sql.Row that can also carry a prepare error.
type row struct {
	r   *sql.Row
	err error
}

func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.r.Scan(dest...)
}

// execStmt runs q outside a transaction's bookkeeping (BEGIN, COMMIT)
// through the prepared statement cache: unprepared, SQLite would parse and
// compile them again for every transaction.
func (s *sqliteStore) execStmt(ctx context.Context, q string) (sql.Result, error) {
	st, err := s.stmt(q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx)
}

func (s *sqliteStore) exec(tx writeTx, q string, args ...any) (sql.Result, error) {
	st, err := s.stmt(q)
	if err != nil {
		return nil, err
	}
	r, err := st.ExecContext(tx.(*sqliteTx).ctx, args...)
	return r, mapSQLiteErr(err)
}

func (s *sqliteStore) query(tx writeTx, q string, args ...any) (*sql.Rows, error) {
	st, err := s.stmt(q)
	if err != nil {
		return nil, err
	}
	r, err := st.QueryContext(tx.(*sqliteTx).ctx, args...)
	return r, mapSQLiteErr(err)
}

func (s *sqliteStore) queryRow(tx writeTx, q string, args ...any) row {
	st, err := s.stmt(q)
	if err != nil {
		return row{err: err}
	}
	return row{r: st.QueryRowContext(tx.(*sqliteTx).ctx, args...)}
}

// --- scanning ------------------------------------------------------------------

type rowScanner interface{ Scan(dest ...any) error }

func scanTask(r rowScanner) (Task, error) {
	var t Task
	var (
		payload, status                                 string
		reqs, owner, lastErr, key, result, progMsg      sql.NullString
		leaseExp, claimed, started, finished, progCur   sql.NullInt64
		progTot, retryBase, retryCap                    sql.NullInt64
		progPct                                         sql.NullFloat64
		runAfter, created, updated, cancelReq, attempts int64
	)
	err := r.Scan(&t.ID, &t.Type, &t.Priority, &payload, &reqs, &status, &attempts, &t.MaxAttempts,
		&runAfter, &leaseExp, &owner, &t.LeaseToken, &created, &updated, &claimed,
		&started, &finished, &lastErr, &key, &result, &progPct,
		&progCur, &progTot, &progMsg, &cancelReq, &retryBase, &retryCap)
	if err != nil {
		return t, err
	}
	t.Payload = json.RawMessage(payload)
	t.Requirements = json.RawMessage("{}")
	if reqs.Valid {
		t.Requirements = json.RawMessage(reqs.String)
	}
	t.Status = Status(status)
	t.Attempts = attempts
	t.RunAfter = fromMillis(runAfter)
	t.LeaseExpiresAt = nullTime(leaseExp)
	t.LeaseOwner = owner.String
	t.CreatedAt = fromMillis(created)
	t.UpdatedAt = fromMillis(updated)
	t.ClaimedAt = nullTime(claimed)
	t.StartedAt = nullTime(started)
	t.FinishedAt = nullTime(finished)
	t.LastError = lastErr.String
	t.IdempotencyKey = key.String
	if result.Valid {
		t.Result = json.RawMessage(result.String)
	}
	if progPct.Valid {
		t.Progress.Percent = &progPct.Float64
	}
	if progCur.Valid {
		t.Progress.Current = &progCur.Int64
	}
	if progTot.Valid {
		t.Progress.Total = &progTot.Int64
	}
	if progMsg.Valid {
		t.Progress.Message = &progMsg.String
	}
	t.CancelRequested = cancelReq != 0
	t.RetryBase = time.Duration(retryBase.Int64) * time.Millisecond
	t.RetryCap = time.Duration(retryCap.Int64) * time.Millisecond
	return t, nil
}

func nullTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMillis(v.Int64)
}

func nullMillis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return toMillis(t)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullDurationMs(d time.Duration) any {
	if d <= 0 {
		return nil
	}
	return d.Milliseconds()
}

func scanTasks(rows *sql.Rows) ([]Task, error) {
	defer rows.Close()
	var out []Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, mapSQLiteErr(rows.Err())
}

func (s *sqliteStore) txGetTask(tx writeTx, id int64) (Task, error) {
	t, err := scanTask(s.queryRow(tx, `SELECT `+taskColumns+` FROM tasks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return t, mapSQLiteErr(err)
}

// --- tasks: writes ---------------------------------------------------------------

// insertCols are the columns an enqueue writes; insertRow returns the values
// after id.
const insertCols = `(id, type, priority, payload, requirements, status, max_attempts, run_after,
	created_at, updated_at, idempotency_key, retry_base_ms, retry_cap_ms, wr_fresh)`

// The first row of an INSERT takes the next id above both the largest id and
// the largest id ever deleted (task_id_floor), so ids are never reused; the
// rows after it (id NULL) get the consecutive ids that follow.
const (
	insertTupleFirst = `((SELECT max(coalesce((SELECT max(id) FROM tasks), 0), floor) + 1 FROM task_id_floor),
	?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)`
	insertTupleNext = `(NULL, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)`
)

// New tasks enter the weighted race only when a weighted claim promotes them
// (claimWeighted), so queues without weighted workers never pay for its index.
// A task due at once is marked wr_fresh: it stays out of tasks_queued_delayed
// and a weighted claim finds it by id (promoteAt).
func insertRow(p insertParams) []any {
	now, runAfter := toMillis(p.Now), toMillis(p.RunAfter)
	fresh := 0
	if runAfter <= now {
		fresh = 1
	}
	return []any{p.Type, p.Priority, p.Payload, nullString(p.Requirements), p.MaxAttempts, runAfter,
		now, now, nullString(p.IdempotencyKey), nullDurationMs(p.RetryBase), nullDurationMs(p.RetryCap), fresh}
}

func insertedTask(id int64, p insertParams) Task {
	reqs := p.Requirements
	if reqs == "" {
		reqs = "{}"
	}
	now := fromMillis(toMillis(p.Now))
	return Task{
		ID: id, Type: p.Type, Priority: p.Priority, Payload: json.RawMessage(p.Payload),
		Requirements: json.RawMessage(reqs), Status: StatusQueued, MaxAttempts: p.MaxAttempts,
		RunAfter: fromMillis(toMillis(p.RunAfter)), CreatedAt: now, UpdatedAt: now,
		IdempotencyKey: p.IdempotencyKey, RetryBase: p.RetryBase, RetryCap: p.RetryCap,
	}
}

// multiInsertSizes are the row counts of the multi-row INSERT statements a
// large batch is cut into; a rest of fewer than exactRows rows goes in one
// statement of its exact size (so at most 3 + exactRows statements are ever
// prepared, and the few enqueues that a group commit merges share one).
var multiInsertSizes = []int{256, 64, exactRows}

const exactRows = 16

func (s *sqliteStore) insertTasks(tx writeTx, ps []insertParams) ([]Task, []bool, error) {
	tasks := make([]Task, len(ps))
	created := make([]bool, len(ps))
	for i := 0; i < len(ps); {
		if ps[i].IdempotencyKey != "" {
			t, err := scanTask(s.queryRow(tx, `SELECT `+taskColumns+` FROM tasks WHERE idempotency_key = ?`, ps[i].IdempotencyKey))
			if err == nil {
				tasks[i] = t
				i++
				continue
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return nil, nil, mapSQLiteErr(err)
			}
			r, err := s.exec(tx, multiInsertSQL(1), insertRow(ps[i])...)
			if err != nil {
				return nil, nil, fmt.Errorf("insert task: %w", err)
			}
			id, _ := r.LastInsertId()
			tasks[i], created[i] = insertedTask(id, ps[i]), true
			tx.(*sqliteTx).transition(ps[i].Type, ps[i].Priority, "", StatusQueued, false)
			i++
			continue
		}
		// A run of tasks without keys: multi-row INSERTs. The writer holds the
		// write lock and each row after the first takes the largest id plus
		// one, so one statement's rows get consecutive ids ending at the last
		// insert rowid.
		j := i
		for j < len(ps) && ps[j].IdempotencyKey == "" {
			j++
		}
		for i < j {
			n := j - i // fewer than exactRows: all of them
			for _, size := range multiInsertSizes {
				if size <= j-i {
					n = size
					break
				}
			}
			args := make([]any, 0, n*13)
			for k := i; k < i+n; k++ {
				args = append(args, insertRow(ps[k])...)
			}
			r, err := s.exec(tx, multiInsertSQL(n), args...)
			if err != nil {
				return nil, nil, fmt.Errorf("insert tasks: %w", err)
			}
			last, err := r.LastInsertId()
			if err != nil {
				return nil, nil, mapSQLiteErr(err)
			}
			for k := 0; k < n; k++ {
				tasks[i+k], created[i+k] = insertedTask(last-int64(n-1-k), ps[i+k]), true
				tx.(*sqliteTx).transition(ps[i+k].Type, ps[i+k].Priority, "", StatusQueued, false)
			}
			i += n
		}
	}
	return tasks, created, nil
}

var multiInsertText sync.Map // int -> string

func multiInsertSQL(n int) string {
	if v, ok := multiInsertText.Load(n); ok {
		return v.(string)
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO tasks ` + insertCols + ` VALUES `)
	for k := 0; k < n; k++ {
		if k == 0 {
			b.WriteString(insertTupleFirst)
		} else {
			b.WriteString("," + insertTupleNext)
		}
	}
	q := b.String()
	multiInsertText.Store(n, q)
	return q
}

// raceClock is the row of wr_clock. t is the clock of the weighted race: the
// key of the latest weighted claim (0 before the first); keys of tasks
// entering the race start from it. mark is the largest id a promotion has
// looked at: tasks enqueued due (wr_fresh) past it are not in the race yet.
type raceClock struct {
	t    float64
	mark int64
}

func (s *sqliteStore) wrClock(tx writeTx) (raceClock, error) {
	var k sql.NullFloat64
	var mark sql.NullInt64
	err := s.queryRow(tx, `SELECT t, mark FROM wr_clock WHERE id = 1`).Scan(&k, &mark)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return raceClock{}, mapSQLiteErr(err)
	}
	return raceClock{t: k.Float64, mark: mark.Int64}, nil
}

// eligibleSQL is the eligibility test of a claim: ?1 now, ?2 the worker's
// types (a JSON array), ?3 its capabilities (a JSON object). The variants
// without types or capabilities leave out their clause, so the common
// catch-all claim evaluates no JSON at all.
func eligibleSQL(hasTypes, hasCaps bool) string {
	c := `status = 'queued' AND run_after <= ?1`
	if hasTypes {
		c += ` AND type IN (SELECT value FROM json_each(?2))`
	}
	if hasCaps {
		c += ` AND (requirements IS NULL OR prismq_req_ok(requirements, ?3))`
	} else {
		c += ` AND requirements IS NULL`
	}
	return c
}

// claimOrder is each strategy's index walk; ?4 is the limit.
var claimOrder = map[Strategy]struct{ index, order string }{
	FIFO:     {"tasks_queued_fifo", "id"},
	LIFO:     {"tasks_queued_fifo", "id DESC"},
	Priority: {"tasks_queued_priority", "priority, id"},
}

var claimSQLCache sync.Map // claimSQLKey -> string

type claimSQLKey struct {
	kind              string
	hasTypes, hasCaps bool
}

// claimSQL returns (and caches) the text of a claim statement.
func claimSQL(kind string, hasTypes, hasCaps bool) string {
	k := claimSQLKey{kind, hasTypes, hasCaps}
	if v, ok := claimSQLCache.Load(k); ok {
		return v.(string)
	}
	el := eligibleSQL(hasTypes, hasCaps)
	var q string
	switch kind {
	case "draw": // weighted: the smallest key among eligible tasks
		q = `SELECT id, priority, wr_key FROM tasks INDEXED BY tasks_queued_wr
			WHERE ` + el + ` AND wr_key IS NOT NULL ORDER BY wr_key LIMIT 1`
	case "oldest": // weighted: the oldest eligible task of level ?4
		q = `SELECT id, wr_key FROM tasks INDEXED BY tasks_queued_priority
			WHERE ` + el + ` AND priority = ?4 ORDER BY id LIMIT 1`
	default:
		o := claimOrder[Strategy(kind)]
		q = `SELECT id FROM tasks INDEXED BY ` + o.index + ` WHERE ` + el + ` ORDER BY ` + o.order + ` LIMIT ?4`
	}
	claimSQLCache.Store(k, q)
	return q
}

// leaseSet is the SET clause of a claim: ?2 owner, ?3 lease until, ?4 now.
const leaseSet = `status = 'leased', attempts = attempts + 1, lease_token = lease_token + 1,
	lease_owner = ?2, lease_expires_at = ?3, claimed_at = ?4, started_at = COALESCE(started_at, ?4),
	updated_at = ?4, wr_key = NULL, wr_fresh = 0, cancel_requested = 0`

// lease leases the given queued tasks and returns them in that order. One
// task: one small UPDATE and a read by id, which avoids the temporary table
// of an UPDATE ... RETURNING. Several: one UPDATE ... RETURNING for all.
func (s *sqliteStore) lease(tx writeTx, ids []int64, p claimParams) ([]Task, error) {
	now, until := toMillis(p.Now), toMillis(p.LeaseUntil)
	if len(ids) == 1 {
		if _, err := s.exec(tx, `UPDATE tasks SET `+leaseSet+` WHERE id = ?1`, ids[0], p.WorkerID, until, now); err != nil {
			return nil, fmt.Errorf("claim: lease %d: %w", ids[0], err)
		}
		t, err := s.txGetTask(tx, ids[0])
		if err != nil {
			return nil, fmt.Errorf("claim: %w", err)
		}
		tx.(*sqliteTx).transition(t.Type, t.Priority, StatusQueued, StatusLeased, false)
		return []Task{t}, nil
	}
	if len(ids) == 0 {
		return []Task{}, nil
	}
	rows, err := s.query(tx, `UPDATE tasks SET `+leaseSet+` WHERE id IN (SELECT value FROM json_each(?1)) RETURNING `+taskColumns,
		idsJSON(ids), p.WorkerID, until, now)
	if err != nil {
		return nil, fmt.Errorf("claim: lease: %w", err)
	}
	got, err := scanTasks(rows)
	if err != nil {
		return nil, fmt.Errorf("claim: lease: %w", err)
	}
	byID := make(map[int64]Task, len(got))
	for _, t := range got {
		byID[t.ID] = t
		tx.(*sqliteTx).transition(t.Type, t.Priority, StatusQueued, StatusLeased, false)
	}
	out := make([]Task, 0, len(ids))
	for _, id := range ids {
		if t, ok := byID[id]; ok {
			out = append(out, t)
		}
	}
	return out, nil
}

// idsJSON encodes ids as a JSON array for json_each.
func idsJSON(ids []int64) string {
	b := make([]byte, 0, len(ids)*8+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

func (s *sqliteStore) claim(tx writeTx, p claimParams) ([]Task, error) {
	if p.Strategy == WeightedRandom {
		return s.claimWeighted(tx, p)
	}
	if _, ok := claimOrder[p.Strategy]; !ok {
		return nil, invalidf("unknown strategy %q", p.Strategy)
	}
	rows, err := s.query(tx, claimSQL(string(p.Strategy), p.TypesJSON != "", p.CapsJSON != ""),
		toMillis(p.Now), p.TypesJSON, p.CapsJSON, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	ids := make([]int64, 0, p.Limit)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, mapSQLiteErr(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, mapSQLiteErr(fmt.Errorf("claim: %w", err))
	}
	return s.lease(tx, ids, p)
}

// claimWeighted: see the comment in strategy.go.
func (s *sqliteStore) claimWeighted(tx writeTx, p claimParams) ([]Task, error) {
	now := toMillis(p.Now)
	hasTypes, hasCaps := p.TypesJSON != "", p.CapsJSON != ""
	rc, err := s.wrClock(tx)
	if err != nil {
		return nil, err
	}
	if _, err := s.promoteAt(tx, rc, now, PromoteBatch); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	var out []Task
	base := rc.t
	clock := base
	for len(out) < p.Limit {
		var drawnID, level int64
		var drawnKey float64
		err := s.queryRow(tx, claimSQL("draw", hasTypes, hasCaps),
			now, p.TypesJSON, p.CapsJSON).Scan(&drawnID, &level, &drawnKey)
		if errors.Is(err, sql.ErrNoRows) {
			break
		}
		if err != nil {
			return nil, mapSQLiteErr(fmt.Errorf("claim: draw: %w", err))
		}
		clock = max(clock, drawnKey)
		var oldestID int64
		var oldestKey sql.NullFloat64
		err = s.queryRow(tx, claimSQL("oldest", hasTypes, hasCaps),
			now, p.TypesJSON, p.CapsJSON, level).Scan(&oldestID, &oldestKey)
		if err != nil {
			return nil, mapSQLiteErr(fmt.Errorf("claim: oldest of level %d: %w", level, err))
		}
		if oldestID != drawnID {
			// Same rate, so swapping keys keeps the race fair (strategy.go).
			if _, err := s.exec(tx, `UPDATE tasks SET wr_key = ? WHERE id = ?`, oldestKey, drawnID); err != nil {
				return nil, fmt.Errorf("claim: swap keys: %w", err)
			}
		}
		ts, err := s.lease(tx, []int64{oldestID}, p)
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	if clock > base {
		// The race moves on to the winning key: by memorylessness the keys
		// left behind are clock + Exp(w) each, as new keys must be.
		if _, err := s.exec(tx, `UPDATE wr_clock SET t = ? WHERE id = 1`, clock); err != nil {
			return nil, fmt.Errorf("claim: advance race clock: %w", err)
		}
	}
	return out, nil
}

// PromoteBatch bounds how many tasks one weighted claim (or one sweeper
// transaction) brings into the weighted race, so that a claim after a large
// enqueue does not hold the write lock for long.
const PromoteBatch = 2000

// promote brings up to limit due tasks that are outside the weighted race
// (new, requeued, or delayed and now due) into it, oldest due first.
func (s *sqliteStore) promote(tx writeTx, now time.Time, limit int) (int64, error) {
	rc, err := s.wrClock(tx)
	if err != nil {
		return 0, err
	}
	return s.promoteAt(tx, rc, toMillis(now), limit)
}

func (s *sqliteStore) promoteAt(tx writeTx, rc raceClock, now int64, limit int) (int64, error) {
	// Tasks enqueued due (wr_fresh) are found by id past the mark: the ids up
	// to the limit-th queued task after it, through the FIFO index.
	base, mark := rc.t, rc.mark
	var top sql.NullInt64
	err := s.queryRow(tx, `SELECT max(id) FROM (SELECT id FROM tasks INDEXED BY tasks_queued_fifo
		WHERE status = 'queued' AND id > ?1 ORDER BY id LIMIT ?2)`, mark, limit).Scan(&top)
	if err != nil {
		return 0, mapSQLiteErr(fmt.Errorf("promote: %w", err))
	}
	var fresh int64
	if top.Valid {
		r, err := s.exec(tx, `UPDATE tasks INDEXED BY tasks_queued_fifo SET wr_key = `+wrKeySQL+`, wr_fresh = 0
			WHERE status = 'queued' AND id > ?2 AND id <= ?3 AND wr_fresh = 1`, base, mark, top.Int64)
		if err != nil {
			return 0, fmt.Errorf("promote new tasks: %w", err)
		}
		if fresh, err = r.RowsAffected(); err != nil {
			return 0, mapSQLiteErr(err)
		}
		if _, err := s.exec(tx, `UPDATE wr_clock SET mark = ? WHERE id = 1`, top.Int64); err != nil {
			return 0, fmt.Errorf("promote: %w", err)
		}
	}
	if fresh >= int64(limit) {
		return fresh, nil
	}
	// Then requeued, retried and delayed tasks that are due, oldest due first.
	r, err := s.exec(tx, `UPDATE tasks SET wr_key = `+wrKeySQL+`
		WHERE id IN (SELECT id FROM tasks INDEXED BY tasks_queued_delayed
			WHERE status = 'queued' AND wr_key IS NULL AND wr_fresh = 0 AND run_after <= ?2 ORDER BY run_after LIMIT ?3)`,
		base, now, int64(limit)-fresh)
	if err != nil {
		return 0, fmt.Errorf("promote due tasks: %w", err)
	}
	n, err := r.RowsAffected()
	return fresh + n, mapSQLiteErr(err)
}

// wrKeySQL draws a race key in SQL for the task's priority, offset by ?1
// (wrKey in SQL: 53 random bits give u in [0, 1)).
const wrKeySQL = `?1 + (-ln(1.0 - ((random() >> 11) & 9007199254740991) / 9007199254740992.0)) * (priority + 1)`

// hasWeightedWorkers reports whether a live worker claims by WEIGHTED_RANDOM.
func (s *sqliteStore) hasWeightedWorkers(ctx context.Context) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM workers WHERE stopped_at IS NULL AND strategy = 'weighted_random' LIMIT 1`).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, mapSQLiteErr(err)
}

// leaseCheck explains why a fenced update matched no row.
func (s *sqliteStore) leaseCheck(tx writeTx, id int64) error {
	var status string
	err := s.queryRow(tx, `SELECT status FROM tasks WHERE id = ?`, id).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if err != nil {
		return mapSQLiteErr(err)
	}
	return fmt.Errorf("%w: task %d is %s under another lease", ErrLeaseLost, id, status)
}

func (s *sqliteStore) fenced(tx writeTx, id int64, r sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return mapSQLiteErr(err)
	}
	if n == 0 {
		return s.leaseCheck(tx, id)
	}
	return nil
}

func (s *sqliteStore) complete(tx writeTx, id, token int64, result json.RawMessage, now time.Time) error {
	var res any
	if result != nil {
		res = string(result)
	}
	r, err := s.exec(tx, `UPDATE tasks SET status = 'completed', result = ?1, finished_at = ?2, updated_at = ?2,
		lease_expires_at = NULL WHERE id = ?3 AND status = 'leased' AND lease_token = ?4`, res, toMillis(now), id, token)
	if err = s.fenced(tx, id, r, err); err != nil {
		return err
	}
	return s.noteByID(tx, id, StatusLeased, StatusCompleted)
}

// noteByID notes the status change of one task for the counters, reading
// its type and priority (a point read of a page the update just wrote is
// cheaper than UPDATE ... RETURNING, which goes through a temporary table).
func (s *sqliteStore) noteByID(tx writeTx, id int64, from, to Status) error {
	var typ string
	var prio int64
	if err := s.queryRow(tx, `SELECT type, priority FROM tasks WHERE id = ?`, id).Scan(&typ, &prio); err != nil {
		return mapSQLiteErr(fmt.Errorf("read task %d: %w", id, err))
	}
	tx.(*sqliteTx).transition(typ, prio, from, to, false)
	return nil
}

// completeMany completes leased tasks without a result: one read of their
// leases and one UPDATE for all whose token still holds. errs[i] is the
// outcome of the i-th lease.
func (s *sqliteStore) completeMany(tx writeTx, leases []Lease, now time.Time) ([]error, error) {
	errs := make([]error, len(leases))
	ids := make([]int64, len(leases))
	for i, l := range leases {
		ids[i] = l.ID
	}
	rows, err := s.query(tx, `SELECT id, status, lease_token, type, priority FROM tasks WHERE id IN (SELECT value FROM json_each(?))`, idsJSON(ids))
	if err != nil {
		return nil, fmt.Errorf("complete: %w", err)
	}
	type state struct {
		status, typ     string
		token, priority int64
	}
	current := make(map[int64]state, len(leases))
	for rows.Next() {
		var id int64
		var st state
		if err := rows.Scan(&id, &st.status, &st.token, &st.typ, &st.priority); err != nil {
			rows.Close()
			return nil, mapSQLiteErr(err)
		}
		current[id] = st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, mapSQLiteErr(err)
	}
	valid := make([]int64, 0, len(leases))
	seen := make(map[int64]bool, len(leases))
	for i, l := range leases {
		st, ok := current[l.ID]
		switch {
		case !ok:
			errs[i] = fmt.Errorf("%w: %d", ErrNotFound, l.ID)
		case st.status != string(StatusLeased) || st.token != l.Token || seen[l.ID]:
			errs[i] = fmt.Errorf("%w: task %d is %s under another lease", ErrLeaseLost, l.ID, st.status)
		default:
			seen[l.ID] = true
			valid = append(valid, l.ID)
			tx.(*sqliteTx).transition(st.typ, st.priority, StatusLeased, StatusCompleted, false)
		}
	}
	if len(valid) > 0 {
		if _, err := s.exec(tx, `UPDATE tasks SET status = 'completed', result = NULL, finished_at = ?1, updated_at = ?1,
			lease_expires_at = NULL WHERE id IN (SELECT value FROM json_each(?2))`, toMillis(now), idsJSON(valid)); err != nil {
			return nil, fmt.Errorf("complete: %w", err)
		}
	}
	return errs, nil
}

func (s *sqliteStore) fail(tx writeTx, p failParams) (Task, error) {
	var attempts, maxAttempts, cancelReq, prio int64
	var base, cp sql.NullInt64
	var typ string
	err := s.queryRow(tx, `SELECT attempts, max_attempts, cancel_requested, retry_base_ms, retry_cap_ms, type, priority FROM tasks
		WHERE id = ? AND status = 'leased' AND lease_token = ?`, p.ID, p.Token).Scan(&attempts, &maxAttempts, &cancelReq, &base, &cp, &typ, &prio)
	if errors.Is(err, sql.ErrNoRows) {
		return Task{}, s.leaseCheck(tx, p.ID)
	}
	if err != nil {
		return Task{}, mapSQLiteErr(err)
	}
	now := toMillis(p.Now)
	status, runAfter, finished := StatusQueued, now, any(nil)
	switch {
	case cancelReq != 0:
		status, finished = StatusCancelled, now
	case !p.Retryable || attempts >= maxAttempts:
		status, finished = StatusFailed, now
	default:
		pol := p.Policy.forTask(time.Duration(base.Int64)*time.Millisecond, time.Duration(cp.Int64)*time.Millisecond)
		runAfter = toMillis(p.Now.Add(pol.Backoff(attempts, nil)))
	}
	_, err = s.exec(tx, `UPDATE tasks SET status = ?1, run_after = ?2, finished_at = ?3, last_error = ?4,
		updated_at = ?5, lease_expires_at = NULL, wr_key = NULL, wr_fresh = 0 WHERE id = ?6`,
		string(status), runAfter, finished, p.Message, now, p.ID)
	if err != nil {
		return Task{}, fmt.Errorf("fail: %w", err)
	}
	tx.(*sqliteTx).transition(typ, prio, StatusLeased, status, true)
	return s.txGetTask(tx, p.ID)
}

func (s *sqliteStore) renew(tx writeTx, id, token int64, until, now time.Time, prog *Progress) (LeaseInfo, error) {
	var cancelReq int64
	var err error
	if prog == nil {
		err = s.queryRow(tx, `UPDATE tasks SET lease_expires_at = ?1, updated_at = ?2
			WHERE id = ?3 AND status = 'leased' AND lease_token = ?4 RETURNING cancel_requested`,
			toMillis(until), toMillis(now), id, token).Scan(&cancelReq)
	} else {
		err = s.queryRow(tx, `UPDATE tasks SET lease_expires_at = ?1, updated_at = ?2,
			progress_percent = COALESCE(?5, progress_percent), progress_current = COALESCE(?6, progress_current),
			progress_total = COALESCE(?7, progress_total), progress_message = COALESCE(?8, progress_message)
			WHERE id = ?3 AND status = 'leased' AND lease_token = ?4 RETURNING cancel_requested`,
			toMillis(until), toMillis(now), id, token,
			ptrValue(prog.Percent), ptrValue(prog.Current), ptrValue(prog.Total), ptrValue(prog.Message)).Scan(&cancelReq)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return LeaseInfo{}, s.leaseCheck(tx, id)
	}
	if err != nil {
		return LeaseInfo{}, mapSQLiteErr(err)
	}
	return LeaseInfo{ExpiresAt: fromMillis(toMillis(until)), CancelRequested: cancelReq != 0}, nil
}

func ptrValue[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func (s *sqliteStore) ackCancel(tx writeTx, id, token int64, now time.Time) error {
	r, err := s.exec(tx, `UPDATE tasks SET status = 'cancelled', finished_at = ?1, updated_at = ?1,
		lease_expires_at = NULL WHERE id = ?2 AND status = 'leased' AND lease_token = ?3`, toMillis(now), id, token)
	if err = s.fenced(tx, id, r, err); err != nil {
		return err
	}
	return s.noteByID(tx, id, StatusLeased, StatusCancelled)
}

func (s *sqliteStore) release(tx writeTx, id, token int64, now time.Time) error {
	// A released attempt is not counted; a pending cancel request wins.
	var typ, status string
	var prio int64
	err := s.queryRow(tx, `UPDATE tasks SET
		status = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END,
		finished_at = CASE WHEN cancel_requested = 1 THEN ?1 END,
		attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
		run_after = ?1, updated_at = ?1, lease_expires_at = NULL, wr_key = NULL, wr_fresh = 0
		WHERE id = ?2 AND status = 'leased' AND lease_token = ?3 RETURNING type, priority, status`,
		toMillis(now), id, token).Scan(&typ, &prio, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return s.leaseCheck(tx, id)
	}
	if err != nil {
		return mapSQLiteErr(fmt.Errorf("release: %w", err))
	}
	tx.(*sqliteTx).transition(typ, prio, StatusLeased, Status(status), false)
	return nil
}

func (s *sqliteStore) cancel(tx writeTx, id int64, now time.Time) (Task, error) {
	t, err := s.txGetTask(tx, id)
	if err != nil {
		return t, err
	}
	ms := toMillis(now)
	switch t.Status {
	case StatusQueued:
		_, err = s.exec(tx, `UPDATE tasks SET status = 'cancelled', finished_at = ?1, updated_at = ?1, wr_key = NULL, wr_fresh = 0
			WHERE id = ?2`, ms, id)
		if err == nil {
			tx.(*sqliteTx).transition(t.Type, t.Priority, StatusQueued, StatusCancelled, false)
		}
	case StatusLeased:
		_, err = s.exec(tx, `UPDATE tasks SET cancel_requested = 1, updated_at = ?1 WHERE id = ?2`, ms, id)
	default:
		return t, fmt.Errorf("%w: task %d is already %s", ErrInvalidState, id, t.Status)
	}
	if err != nil {
		return t, fmt.Errorf("cancel: %w", err)
	}
	return s.txGetTask(tx, id)
}

func (s *sqliteStore) retry(tx writeTx, id int64, now time.Time) (Task, error) {
	t, err := s.txGetTask(tx, id)
	if err != nil {
		return t, err
	}
	if t.Status != StatusFailed && t.Status != StatusCancelled {
		return t, fmt.Errorf("%w: only failed or cancelled tasks can be retried; task %d is %s", ErrInvalidState, id, t.Status)
	}
	_, err = s.exec(tx, `UPDATE tasks SET status = 'queued', attempts = 0, run_after = ?1, updated_at = ?1,
		finished_at = NULL, cancel_requested = 0, result = NULL, lease_expires_at = NULL, wr_key = NULL, wr_fresh = 0
		WHERE id = ?2`, toMillis(now), id)
	if err != nil {
		return t, fmt.Errorf("retry: %w", err)
	}
	tx.(*sqliteTx).transition(t.Type, t.Priority, t.Status, StatusQueued, false)
	return s.txGetTask(tx, id)
}

func (s *sqliteStore) sweep(tx writeTx, now time.Time, policy RetryPolicy, limit int) (SweepResult, error) {
	var res SweepResult
	ms := toMillis(now)
	rows, err := s.query(tx, `SELECT id, lease_token, attempts, max_attempts, cancel_requested, retry_base_ms,
		retry_cap_ms, lease_owner, type, priority FROM tasks INDEXED BY tasks_leased
		WHERE status = 'leased' AND lease_expires_at <= ? ORDER BY lease_expires_at LIMIT ?`, ms, limit)
	if err != nil {
		return res, fmt.Errorf("sweep: %w", err)
	}
	type expired struct {
		id, token, attempts, max, cancel, priority int64
		base, cap                                  sql.NullInt64
		owner                                      sql.NullString
		typ                                        string
	}
	var list []expired
	for rows.Next() {
		var e expired
		if err := rows.Scan(&e.id, &e.token, &e.attempts, &e.max, &e.cancel, &e.base, &e.cap, &e.owner, &e.typ, &e.priority); err != nil {
			rows.Close()
			return res, mapSQLiteErr(err)
		}
		list = append(list, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, mapSQLiteErr(err)
	}
	for _, e := range list {
		status, runAfter, finished := StatusQueued, ms, any(nil)
		msg := fmt.Sprintf("lease expired (worker %q stopped renewing it)", e.owner.String)
		switch {
		case e.cancel != 0:
			status, finished = StatusCancelled, ms
			res.Cancelled++
		case e.attempts >= e.max:
			status, finished = StatusFailed, ms
			msg += fmt.Sprintf("; %d of %d attempts used", e.attempts, e.max)
			res.Failed++
		default:
			pol := policy.forTask(time.Duration(e.base.Int64)*time.Millisecond, time.Duration(e.cap.Int64)*time.Millisecond)
			runAfter = toMillis(now.Add(pol.Backoff(e.attempts, nil)))
			res.Requeued++
		}
		r, err := s.exec(tx, `UPDATE tasks SET status = ?1, run_after = ?2, finished_at = ?3, last_error = ?4,
			updated_at = ?5, lease_expires_at = NULL, wr_key = NULL, wr_fresh = 0
			WHERE id = ?6 AND status = 'leased' AND lease_token = ?7`,
			string(status), runAfter, finished, msg, ms, e.id, e.token)
		if err != nil {
			return res, fmt.Errorf("sweep: %w", err)
		}
		if n, _ := r.RowsAffected(); n == 1 {
			tx.(*sqliteTx).transition(e.typ, e.priority, StatusLeased, status, true)
		}
	}
	return res, nil
}

func (s *sqliteStore) appendLog(tx writeTx, e LogEntry) error {
	var one int
	err := s.queryRow(tx, `SELECT 1 FROM tasks WHERE id = ?`, e.TaskID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %d", ErrNotFound, e.TaskID)
	}
	if err != nil {
		return mapSQLiteErr(err)
	}
	var details any
	if e.Details != nil {
		details = string(e.Details)
	}
	_, err = s.exec(tx, `INSERT INTO task_logs (task_id, at, level, message, details) VALUES (?, ?, ?, ?, ?)`,
		e.TaskID, toMillis(e.At), e.Level, e.Message, details)
	return err
}

// --- workers -----------------------------------------------------------------------

func (s *sqliteStore) upsertWorker(tx writeTx, w WorkerInfo, lease time.Duration) error {
	types, _ := json.Marshal(w.Types)
	if w.Types == nil {
		types = []byte("[]")
	}
	now := toMillis(w.StartedAt)
	_, err := s.exec(tx, `INSERT INTO workers (id, host, pid, strategy, capabilities, types, lease_ms, started_at, heartbeat_at, stopped_at)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, NULL)
		ON CONFLICT (id) DO UPDATE SET host = ?2, pid = ?3, strategy = ?4, capabilities = ?5, types = ?6,
		lease_ms = ?7, started_at = ?8, heartbeat_at = ?8, stopped_at = NULL`,
		w.ID, w.Host, w.PID, string(w.Strategy), string(w.Capabilities), string(types), lease.Milliseconds(), now)
	return err
}

func (s *sqliteStore) heartbeat(tx writeTx, workerID string, now, until time.Time) (HeartbeatResult, error) {
	var res HeartbeatResult
	if _, err := s.exec(tx, `UPDATE workers SET heartbeat_at = ?, stopped_at = NULL WHERE id = ?`, toMillis(now), workerID); err != nil {
		return res, fmt.Errorf("heartbeat: %w", err)
	}
	rows, err := s.query(tx, `UPDATE tasks SET lease_expires_at = ?1, updated_at = ?2
		WHERE status = 'leased' AND lease_owner = ?3 RETURNING id, cancel_requested`, toMillis(until), toMillis(now), workerID)
	if err != nil {
		return res, fmt.Errorf("heartbeat: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, c int64
		if err := rows.Scan(&id, &c); err != nil {
			return res, mapSQLiteErr(err)
		}
		res.Renewed++
		if c != 0 {
			res.CancelRequested = append(res.CancelRequested, id)
		}
	}
	sort.Slice(res.CancelRequested, func(i, j int) bool { return res.CancelRequested[i] < res.CancelRequested[j] })
	return res, mapSQLiteErr(rows.Err())
}

func (s *sqliteStore) stopWorker(tx writeTx, workerID string, now time.Time) error {
	_, err := s.exec(tx, `UPDATE workers SET stopped_at = ? WHERE id = ?`, toMillis(now), workerID)
	return err
}

func (s *sqliteStore) setWorkerStrategy(tx writeTx, workerID string, st Strategy) error {
	_, err := s.exec(tx, `UPDATE workers SET strategy = ? WHERE id = ?`, string(st), workerID)
	return err
}

// --- reads ---------------------------------------------------------------------------

func (s *sqliteStore) getTask(ctx context.Context, id int64) (Task, error) {
	t, err := scanTask(s.db.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return t, mapSQLiteErr(err)
}

func (s *sqliteStore) listTasks(ctx context.Context, f ListFilter) (ListPage, error) {
	var where []string
	var args []any
	if len(f.Statuses) > 0 {
		ph := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			ph[i] = "?"
			args = append(args, string(st))
		}
		where = append(where, "status IN ("+strings.Join(ph, ",")+")")
	}
	if len(f.Types) > 0 {
		ph := make([]string, len(f.Types))
		for i, t := range f.Types {
			ph[i] = "?"
			args = append(args, t)
		}
		where = append(where, "type IN ("+strings.Join(ph, ",")+")")
	}
	order := "id"
	if f.Descending {
		order = "id DESC"
		if f.AfterID > 0 {
			where = append(where, "id < ?")
			args = append(args, f.AfterID)
		}
	} else if f.AfterID > 0 {
		where = append(where, "id > ?")
		args = append(args, f.AfterID)
	}
	q := `SELECT ` + taskColumns + ` FROM tasks`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY " + order + " LIMIT ?"
	args = append(args, f.Limit+1)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return ListPage{}, mapSQLiteErr(fmt.Errorf("list: %w", err))
	}
	tasks, err := scanTasks(rows)
	if err != nil {
		return ListPage{}, fmt.Errorf("list: %w", err)
	}
	page := ListPage{Tasks: tasks}
	if len(tasks) > f.Limit {
		page.Tasks = tasks[:f.Limit]
		page.NextAfterID = page.Tasks[f.Limit-1].ID
	}
	return page, nil
}

func (s *sqliteStore) stats(ctx context.Context) (Stats, error) {
	st := Stats{ByStatus: map[Status]int64{}, ByType: map[string]map[Status]int64{}}
	for _, s := range []Status{StatusQueued, StatusLeased, StatusCompleted, StatusFailed, StatusCancelled} {
		st.ByStatus[s] = 0
	}
	depth, err := s.depthRows(ctx)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	for _, r := range depth {
		st.Total += r.Count
		st.ByStatus[r.Status] += r.Count
		if st.ByType[r.Type] == nil {
			st.ByType[r.Type] = map[Status]int64{}
		}
		st.ByType[r.Type][r.Status] += r.Count
	}
	var oldest sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT created_at FROM tasks INDEXED BY tasks_queued_fifo
		WHERE status = 'queued' ORDER BY id LIMIT 1`).Scan(&oldest); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return st, mapSQLiteErr(err)
	}
	st.OldestQueued = nullTime(oldest)
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM workers WHERE stopped_at IS NULL`).Scan(&st.Workers); err != nil {
		return st, mapSQLiteErr(err)
	}
	return st, nil
}

func (s *sqliteStore) logs(ctx context.Context, taskID int64, limit int) ([]LogEntry, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, task_id, at, level, message, details FROM task_logs
		WHERE task_id = ? ORDER BY id LIMIT ?`, taskID, limit)
	if err != nil {
		return nil, mapSQLiteErr(fmt.Errorf("logs: %w", err))
	}
	defer rows.Close()
	out := []LogEntry{}
	for rows.Next() {
		var e LogEntry
		var at int64
		var details sql.NullString
		if err := rows.Scan(&e.ID, &e.TaskID, &at, &e.Level, &e.Message, &details); err != nil {
			return nil, mapSQLiteErr(err)
		}
		e.At = fromMillis(at)
		if details.Valid {
			e.Details = json.RawMessage(details.String)
		}
		out = append(out, e)
	}
	return out, mapSQLiteErr(rows.Err())
}

func (s *sqliteStore) workers(ctx context.Context) ([]WorkerInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT w.id, w.host, w.pid, w.strategy, w.capabilities, w.types,
		w.started_at, w.heartbeat_at, w.stopped_at,
		(SELECT count(*) FROM tasks t INDEXED BY tasks_leased WHERE t.status = 'leased' AND t.lease_owner = w.id)
		FROM workers w ORDER BY w.id`)
	if err != nil {
		return nil, mapSQLiteErr(fmt.Errorf("workers: %w", err))
	}
	defer rows.Close()
	out := []WorkerInfo{}
	for rows.Next() {
		var w WorkerInfo
		var strategy, caps, types string
		var started, hb int64
		var stopped sql.NullInt64
		if err := rows.Scan(&w.ID, &w.Host, &w.PID, &strategy, &caps, &types, &started, &hb, &stopped, &w.Running); err != nil {
			return nil, mapSQLiteErr(err)
		}
		w.Strategy = Strategy(strategy)
		w.Capabilities = json.RawMessage(caps)
		_ = json.Unmarshal([]byte(types), &w.Types)
		w.StartedAt, w.HeartbeatAt, w.StoppedAt = fromMillis(started), fromMillis(hb), nullTime(stopped)
		out = append(out, w)
	}
	return out, mapSQLiteErr(rows.Err())
}

func (s *sqliteStore) nextDue(ctx context.Context, now time.Time) (time.Time, error) {
	var ms sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT min(run_after) FROM tasks INDEXED BY tasks_queued_delayed
		WHERE status = 'queued' AND wr_key IS NULL AND wr_fresh = 0 AND run_after > ?`, toMillis(now)).Scan(&ms)
	if err != nil {
		return time.Time{}, mapSQLiteErr(err)
	}
	return nullTime(ms), nil
}

func (s *sqliteStore) changeCounter(ctx context.Context) (int64, error) {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	var v int64
	err := s.pollConn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v)
	return v, mapSQLiteErr(err)
}

func (s *sqliteStore) schemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, mapSQLiteErr(err)
}
