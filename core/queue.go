package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Queue is an open task queue database. It is safe for concurrent use by
// many goroutines; several processes may open the same file at once.
type Queue struct {
	opts   Options
	st     *sqliteStore
	w      *writer
	sig    *signal
	poll   *poller
	closed chan struct{}
	once   sync.Once
	bg     sync.WaitGroup

	busyRetries atomic.Int64

	mu      sync.Mutex
	workers map[*Worker]struct{}
}

// Open opens (creating and migrating when needed) the queue database
// described by opts and starts its sweeper. Errors: ErrInvalidArgument for bad
// options, ErrNetworkPath for a network share without AllowNetworkPath, ErrIO
// when the file or its folder cannot be created or opened, ErrSchema for a
// database newer than this library, ErrBusy when it stays locked.
func Open(ctx context.Context, opts Options) (*Queue, error) {
	return openQueue(ctx, opts, 0)
}

// OpenAtVersion is Open with migrations applied only up to schemaVersion. It
// exists to create older files for upgrade tests; applications use Open. The
// engine's task operations need the latest schema (on an older one they fail
// with SQLite's "no such column" or "no such table"), so write such a file's
// tasks with plain SQL.
func OpenAtVersion(ctx context.Context, opts Options, schemaVersion int) (*Queue, error) {
	if schemaVersion < 1 {
		return nil, invalidf("schema version must be >= 1")
	}
	return openQueue(ctx, opts, schemaVersion)
}

// openStore opens the file and migrates it to target. Processes that open
// a new file at the same moment can find it locked in ways that SQLite's
// busy handler does not wait for (one switching the new file to WAL or
// creating its schema while another reads it), so an open that fails with
// ErrBusy is tried again, with growing sleeps, for up to busy_timeout.
func openStore(ctx context.Context, o Options, target int, busyRetries *atomic.Int64) (*sqliteStore, error) {
	deadline := time.Now().Add(o.busyTimeout())
	sleep := time.Millisecond
	for {
		st, err := openSQLiteStore(ctx, o, busyRetries)
		if err == nil {
			if err = st.migrate(ctx, target, o.Clock.Now()); err == nil {
				return st, nil
			}
			_ = st.close()
		}
		if !errors.Is(err, ErrBusy) || !time.Now().Before(deadline) {
			return nil, err
		}
		busyRetries.Add(1)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(sleep/2 + rand.N(sleep)):
		}
		sleep = min(2*sleep, 50*time.Millisecond)
	}
}

func openQueue(ctx context.Context, opts Options, target int) (*Queue, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	// The share check runs on the path as given: filepath.Abs folds a UNC
	// path such as //server/share/q.db into a local one on Unix.
	if !o.AllowNetworkPath {
		if net, kind := isNetworkPath(o.Path); net {
			return nil, fmt.Errorf("%w: %s (%s): SQLite locking is unreliable there; use a local disk "+
				"or set allow_network_path", ErrNetworkPath, o.Path, kind)
		}
	}
	abs, err := filepath.Abs(o.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: database path %q: %v", ErrInvalidArgument, o.Path, err)
	}
	o.Path = abs
	if st, err := os.Stat(o.Path); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%w: database path %q is a directory", ErrInvalidArgument, o.Path)
	}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o755); err != nil {
		return nil, fmt.Errorf("%w: create folder for %s: %v", ErrIO, o.Path, err)
	}
	q := &Queue{opts: o, sig: newSignal(), closed: make(chan struct{}), workers: map[*Worker]struct{}{}}
	st, err := openStore(ctx, o, target, &q.busyRetries)
	if err != nil {
		return nil, err
	}
	q.st = st
	q.w = newWriter(st, o.MaxBatch, func(wake bool) {
		if wake {
			q.sig.broadcast()
		}
	})
	q.poll = newPoller(st, q.sig, o.WakePollInterval)
	if !o.DisableSweeper {
		q.bg.Add(1)
		go q.sweepLoop()
	}
	return q, nil
}

// Close stops the sweeper, wakes blocked claims (they return ErrClosed),
// closes the queue's workers and the database. A second Close returns ErrClosed.
func (q *Queue) Close() error {
	err := ErrClosed
	q.once.Do(func() {
		q.mu.Lock()
		ws := make([]*Worker, 0, len(q.workers))
		for w := range q.workers {
			ws = append(ws, w)
		}
		q.mu.Unlock()
		for _, w := range ws {
			_ = w.Close(context.Background())
		}
		close(q.closed)
		q.bg.Wait()
		q.poll.close()
		q.w.close()
		err = q.st.close()
	})
	return err
}

func (q *Queue) isClosed() bool {
	select {
	case <-q.closed:
		return true
	default:
		return false
	}
}

// write runs fn in the writer's transaction.
func (q *Queue) write(ctx context.Context, wake bool, fn func(tx writeTx) error) error {
	if q.isClosed() {
		return ErrClosed
	}
	return q.w.do(ctx, wake, fn)
}

func (q *Queue) now() time.Time { return q.opts.Clock.Now() }

// Path is the absolute path of the database file.
func (q *Queue) Path() string { return q.opts.Path }

// Options returns the options in force, defaults filled in.
func (q *Queue) Options() Options { return q.opts }

// SchemaVersion reads the database's schema version.
func (q *Queue) SchemaVersion(ctx context.Context) (int, error) {
	if q.isClosed() {
		return 0, ErrClosed
	}
	return q.st.schemaVersion(ctx)
}

// BusyRetries counts how often the engine found the database locked by
// another connection and retried (since Open).
func (q *Queue) BusyRetries() int64 { return q.busyRetries.Load() }

// Checkpoints counts the background WAL checkpoints this Queue has run (one
// per wal_autocheckpoint pages it wrote; the pragma at 0 turns them off).
func (q *Queue) Checkpoints() int64 { return q.st.checkpoints() }

// --- validation ----------------------------------------------------------------

func (q *Queue) checkJSONObject(what string, raw json.RawMessage) (string, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return "{}", nil
	}
	if len(trimmed) > q.opts.MaxPayloadBytes {
		return "", fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrPayloadTooLarge, what, len(trimmed), q.opts.MaxPayloadBytes)
	}
	if trimmed[0] != '{' || !json.Valid(trimmed) {
		return "", invalidf("%s must be a JSON object", what)
	}
	// json.Valid accepts invalid UTF-8 inside strings; readers of the stored
	// text (Python's json, SQLite's JSON functions) do not.
	if !utf8.Valid(trimmed) {
		return "", invalidf("%s is not valid UTF-8", what)
	}
	return string(trimmed), nil
}

func (q *Queue) checkJSONValue(what string, raw json.RawMessage) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return nil, nil
	}
	if len(trimmed) > q.opts.MaxPayloadBytes {
		return nil, fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrPayloadTooLarge, what, len(trimmed), q.opts.MaxPayloadBytes)
	}
	if !json.Valid(trimmed) {
		return nil, invalidf("%s is not valid JSON", what)
	}
	if !utf8.Valid(trimmed) {
		return nil, invalidf("%s is not valid UTF-8", what)
	}
	return json.RawMessage(trimmed), nil
}

func checkText(what, s string, max int, required bool) error {
	if required && s == "" {
		return invalidf("%s is required", what)
	}
	if len(s) > max {
		return invalidf("%s is %d bytes, at most %d allowed", what, len(s), max)
	}
	if !utf8.ValidString(s) {
		return invalidf("%s is not valid UTF-8", what)
	}
	return nil
}

// MaxPriority is the largest priority number accepted.
const MaxPriority = 1_000_000_000

func (q *Queue) prepareInsert(p EnqueueParams, now time.Time) (insertParams, error) {
	var ip insertParams
	if err := checkText("task type", p.Type, maxTypeLen, true); err != nil {
		return ip, err
	}
	if err := checkText("idempotency key", p.IdempotencyKey, maxKeyLen, false); err != nil {
		return ip, err
	}
	payload, err := q.checkJSONObject("payload", p.Payload)
	if err != nil {
		return ip, err
	}
	reqs, err := q.checkJSONObject("requirements", p.Requirements)
	if err != nil {
		return ip, err
	}
	if reqs == "{}" {
		reqs = ""
	}
	prio := DefaultPriority
	if p.Priority != nil {
		prio = *p.Priority
	}
	if prio < 0 || prio > MaxPriority {
		return ip, invalidf("priority must be between 0 and %d, got %d", MaxPriority, prio)
	}
	maxAttempts := p.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = DefaultMaxAttempts
	}
	if maxAttempts < 1 || maxAttempts > 1000 {
		return ip, invalidf("max attempts must be between 1 and 1000, got %d", maxAttempts)
	}
	if p.Delay < 0 {
		return ip, invalidf("delay must be >= 0, got %v", p.Delay)
	}
	if p.RetryBase < 0 || p.RetryCap < 0 {
		return ip, invalidf("retry base and cap must be >= 0")
	}
	runAfter := now.Add(p.Delay)
	if !p.RunAt.IsZero() {
		runAfter = p.RunAt
	}
	return insertParams{
		Type: p.Type, Priority: prio, Payload: payload, Requirements: reqs, MaxAttempts: maxAttempts,
		RunAfter: runAfter, IdempotencyKey: p.IdempotencyKey, RetryBase: p.RetryBase, RetryCap: p.RetryCap, Now: now,
	}, nil
}

// --- producer operations ------------------------------------------------------

// Enqueue adds one task. With an IdempotencyKey that already exists it
// returns the existing task and Created=false, also when several processes
// enqueue the same key at once. Errors: ErrInvalidArgument, ErrPayloadTooLarge,
// ErrClosed, ErrBusy.
func (q *Queue) Enqueue(ctx context.Context, p EnqueueParams) (EnqueueResult, error) {
	res, err := q.EnqueueMany(ctx, []EnqueueParams{p})
	if err != nil {
		return EnqueueResult{}, err
	}
	return res[0], nil
}

// EnqueueMany adds tasks in one transaction: all or none. Results are in
// input order. Errors as Enqueue; an invalid item names its index.
func (q *Queue) EnqueueMany(ctx context.Context, ps []EnqueueParams) ([]EnqueueResult, error) {
	if len(ps) == 0 {
		return []EnqueueResult{}, nil
	}
	now := q.now()
	ips := make([]insertParams, len(ps))
	for i, p := range ps {
		ip, err := q.prepareInsert(p, now)
		if err != nil {
			if len(ps) > 1 {
				return nil, fmt.Errorf("task %d: %w", i, err)
			}
			return nil, err
		}
		ips[i] = ip
	}
	if q.isClosed() {
		return nil, ErrClosed
	}
	tasks, created, err := q.w.insert(ctx, ips)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	out := make([]EnqueueResult, len(ips))
	for i := range tasks {
		out[i] = EnqueueResult{Task: tasks[i], Created: created[i]}
	}
	return out, nil
}

// Get returns a task. Errors: ErrNotFound, ErrClosed.
func (q *Queue) Get(ctx context.Context, id int64) (Task, error) {
	if q.isClosed() {
		return Task{}, ErrClosed
	}
	if id <= 0 {
		return Task{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return q.st.getTask(ctx, id)
}

// List returns one page of tasks matching f, in id order.
func (q *Queue) List(ctx context.Context, f ListFilter) (ListPage, error) {
	if q.isClosed() {
		return ListPage{}, ErrClosed
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	if f.Limit < 0 || f.Limit > 10000 {
		return ListPage{}, invalidf("limit must be between 1 and 10000, got %d", f.Limit)
	}
	if f.AfterID < 0 {
		return ListPage{}, invalidf("after_id must be >= 0")
	}
	for _, s := range f.Statuses {
		if !s.Valid() {
			return ListPage{}, invalidf("unknown status %q", s)
		}
	}
	return q.st.listTasks(ctx, f)
}

// Cancel cancels a queued task at once; a leased task gets a cancel request
// that its worker sees on its next heartbeat, renew or progress call, and it
// ends cancelled when the worker acknowledges (Worker.AckCancel) or its lease
// expires. Errors: ErrNotFound, ErrInvalidState (already finished), ErrClosed.
func (q *Queue) Cancel(ctx context.Context, id int64) (Task, error) {
	var t Task
	err := q.write(ctx, false, func(tx writeTx) (err error) {
		t, err = q.st.cancel(tx, id, q.now())
		return err
	})
	return t, err
}

// Retry puts a failed or cancelled task back to queued with its attempts
// reset. Errors: ErrNotFound, ErrInvalidState, ErrClosed.
func (q *Queue) Retry(ctx context.Context, id int64) (Task, error) {
	var t Task
	err := q.write(ctx, true, func(tx writeTx) (err error) {
		t, err = q.st.retry(tx, id, q.now())
		return err
	})
	return t, err
}

// Stats counts tasks by status and type.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	if q.isClosed() {
		return Stats{}, ErrClosed
	}
	return q.st.stats(ctx)
}

// Log levels accepted by AppendLog.
var logLevels = map[string]bool{"debug": true, "info": true, "warning": true, "error": true}

// AppendLog adds a line to a task's log. level is debug, info (default),
// warning or error; details is a JSON value or nil. Errors: ErrNotFound,
// ErrInvalidArgument, ErrPayloadTooLarge, ErrClosed.
func (q *Queue) AppendLog(ctx context.Context, taskID int64, level, message string, details json.RawMessage) error {
	if level == "" {
		level = "info"
	}
	if !logLevels[level] {
		return invalidf("log level must be debug, info, warning or error, got %q", level)
	}
	if err := checkText("log message", message, q.opts.MaxPayloadBytes, false); err != nil {
		return err
	}
	d, err := q.checkJSONValue("log details", details)
	if err != nil {
		return err
	}
	return q.write(ctx, false, func(tx writeTx) error {
		return q.st.appendLog(tx, LogEntry{TaskID: taskID, At: q.now(), Level: level, Message: message, Details: d})
	})
}

// Logs returns a task's log, oldest first, at most limit lines (<= 0: all).
func (q *Queue) Logs(ctx context.Context, taskID int64, limit int) ([]LogEntry, error) {
	if q.isClosed() {
		return nil, ErrClosed
	}
	if _, err := q.st.getTask(ctx, taskID); err != nil {
		return nil, err
	}
	return q.st.logs(ctx, taskID, limit)
}

// Workers lists the worker registry.
func (q *Queue) Workers(ctx context.Context) ([]WorkerInfo, error) {
	if q.isClosed() {
		return nil, ErrClosed
	}
	return q.st.workers(ctx)
}

// --- sweeper -------------------------------------------------------------------

const sweepBatch = 500

// Sweep returns expired leases to the queue now: each is requeued with
// backoff (its attempt counted at claim), failed when its attempts are
// exhausted, or cancelled when a cancel was requested. While a live worker
// claims by WEIGHTED_RANDOM it also brings due tasks into the weighted race.
func (q *Queue) Sweep(ctx context.Context) (SweepResult, error) {
	var total SweepResult
	for {
		var r SweepResult
		err := q.write(ctx, true, func(tx writeTx) (err error) {
			r, err = q.st.sweep(tx, q.now(), q.opts.Retry, sweepBatch)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("sweep: %w", err)
		}
		total.Requeued += r.Requeued
		total.Failed += r.Failed
		total.Cancelled += r.Cancelled
		if r.Requeued+r.Failed+r.Cancelled < sweepBatch {
			break
		}
	}
	return total, q.promote(ctx)
}

// promote brings due tasks into the weighted race in the background, in
// transactions of PromoteBatch tasks, while a live worker claims by
// WEIGHTED_RANDOM; its claims then find the race complete and stay cheap.
func (q *Queue) promote(ctx context.Context) error {
	if ok, err := q.st.hasWeightedWorkers(ctx); err != nil || !ok {
		return err
	}
	for {
		var n int64
		err := q.write(ctx, false, func(tx writeTx) (err error) {
			n, err = q.st.promote(tx, q.now(), PromoteBatch)
			return err
		})
		if err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		if n < PromoteBatch {
			return nil
		}
	}
}

func (q *Queue) sweepLoop() {
	defer q.bg.Done()
	t := time.NewTicker(q.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-q.closed:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := q.Sweep(ctx)
			cancel()
			// A busy database or a closing queue are retried at the next tick.
			_ = err
		}
	}
}

// waitForWork blocks until something may have become claimable: a local
// commit, another process's commit, the next delayed task falling due, the
// deadline, ctx or Close. It reports false when the wait should end.
func (q *Queue) waitForWork(ctx context.Context, ch <-chan struct{}, deadline time.Time) (bool, error) {
	wait := time.Until(deadline)
	if wait <= 0 {
		return false, nil
	}
	now := q.now()
	if due, err := q.st.nextDue(ctx, now); err == nil && !due.IsZero() {
		if d := due.Sub(now); d < wait {
			wait = d
		}
	}
	if wait < time.Millisecond {
		wait = time.Millisecond
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ch:
		return true, nil
	case <-timer.C:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-q.closed:
		return false, ErrClosed
	}
}
