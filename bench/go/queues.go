package main

// One adapter per queue. Each opens its own database file with the same
// durability settings (WAL, synchronous=NORMAL, busy_timeout=5000 ms) and
// uses the peer's public API the way its documentation shows.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prismq/queue/core"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"maragu.dev/goqite"
	_ "modernc.org/sqlite"
)

// payload is the task body of every workload and every queue.
var payload = []byte(`{"user":42,"action":"resize","path":"/img/a.png"}`)

const taskType = "bench"

// errUnsupported marks a workload a queue has no API for.
var errUnsupported = errors.New("unsupported")

// adapter is what every workload needs from a queue.
type adapter interface {
	// enqueue adds one task in its own transaction.
	enqueue(ctx context.Context, body []byte) error
	// enqueueBatch adds len(bodies) tasks in one call / transaction.
	enqueueBatch(ctx context.Context, bodies [][]byte) error
	// fill adds n tasks as fast as the queue allows (setup, not measured).
	fill(ctx context.Context, n int) error
	// claimComplete claims one task and completes it; false when none was due.
	claimComplete(ctx context.Context) (bool, error)
	// work runs a worker until ctx ends, calling done(k) after k tasks
	// completed and started(body) when a task starts.
	work(ctx context.Context, started func([]byte), done func(int)) error
	close() error
}

// queueNames in report order.
var queueNames = []string{"prismq", "prismq-batch", "goqite", "river"}

func openAdapter(ctx context.Context, name, path string) (adapter, error) {
	switch name {
	case "prismq":
		return openPrismq(ctx, path, 1)
	case "prismq-batch":
		return openPrismq(ctx, path, claimBatch)
	case "goqite":
		return openGoqite(ctx, path)
	case "river":
		return openRiver(ctx, path)
	}
	return nil, fmt.Errorf("unknown queue %q", name)
}

// sqliteDSN: the same durability for the database/sql peers as our engine's
// defaults. _txlock=immediate makes a write transaction wait on busy_timeout
// instead of failing when two processes upgrade read locks at once.
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=busy_timeout(5000)&_txlock=immediate"
}

// pollInterval is how often a waiting worker of every queue looks for work
// from another process (our engine's default wake poll).
const pollInterval = 20 * time.Millisecond

// claimBatch is how many tasks the batching variant claims per call.
const claimBatch = 64

// ---------------------------------------------------------------- prismq

type prismq struct {
	q     *core.Queue
	w     *core.Worker
	batch int
}

var prismqWorkerSeq atomic.Int64

func openPrismq(ctx context.Context, path string, batch int) (*prismq, error) {
	q, err := core.Open(ctx, core.Options{Path: path})
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("bench-%d-%d", os.Getpid(), prismqWorkerSeq.Add(1))
	w, err := q.RegisterWorker(ctx, core.WorkerConfig{ID: id, Strategy: core.FIFO})
	if err != nil {
		_ = q.Close()
		return nil, err
	}
	return &prismq{q: q, w: w, batch: batch}, nil
}

func (p *prismq) enqueue(ctx context.Context, body []byte) error {
	_, err := p.q.Enqueue(ctx, core.EnqueueParams{Type: taskType, Payload: body})
	return err
}

func (p *prismq) enqueueBatch(ctx context.Context, bodies [][]byte) error {
	ps := make([]core.EnqueueParams, len(bodies))
	for i, b := range bodies {
		ps[i] = core.EnqueueParams{Type: taskType, Payload: b}
	}
	_, err := p.q.EnqueueMany(ctx, ps)
	return err
}

func (p *prismq) fill(ctx context.Context, n int) error {
	// One task through the API, then copies of its row (ids from AUTOINCREMENT).
	if err := p.enqueue(ctx, payload); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", sqliteDSN(p.q.Path()))
	if err != nil {
		return err
	}
	defer db.Close()
	return cloneRows(ctx, db, "tasks", "id", n-1)
}

func (p *prismq) claimComplete(ctx context.Context) (bool, error) {
	ts, err := p.w.Claim(ctx, 1, 0)
	if err != nil || len(ts) == 0 {
		return false, err
	}
	return true, p.w.Complete(ctx, ts[0].ID, ts[0].LeaseToken, nil)
}

// claimCompleteBatch claims up to p.batch tasks and acknowledges them together.
func (p *prismq) claimCompleteBatch(ctx context.Context) (int, error) {
	ts, err := p.w.Claim(ctx, p.batch, 0)
	if err != nil || len(ts) == 0 {
		return 0, err
	}
	return len(ts), p.ackAll(ctx, ts)
}

func (p *prismq) ackAll(ctx context.Context, ts []core.Task) error {
	acks := make([]core.Ack, len(ts))
	for i, t := range ts {
		acks[i] = core.Ack{ID: t.ID, Token: t.LeaseToken, Op: core.AckComplete}
	}
	errs, err := p.w.AckMany(ctx, acks)
	if err != nil {
		return err
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func (p *prismq) work(ctx context.Context, started func([]byte), done func(int)) error {
	for ctx.Err() == nil {
		ts, err := p.w.Claim(ctx, p.batch, time.Second)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if len(ts) == 0 {
			continue
		}
		for _, t := range ts {
			started(t.Payload)
		}
		// Settle what was claimed even when the stop came meanwhile.
		if err := p.ackAll(context.WithoutCancel(ctx), ts); err != nil {
			return err
		}
		done(len(ts))
	}
	return nil
}

func (p *prismq) close() error {
	_ = p.w.Close(context.Background())
	return p.q.Close()
}

// ---------------------------------------------------------------- goqite

// goqiteSchemaPath is goqite's own schema_sqlite.sql in the module cache
// (flag -goqite-schema; run_all.py finds it with `go list -m`). It is read,
// never copied into this tree.
var goqiteSchemaPath string

type goqiteQ struct {
	db *sql.DB
	q  *goqite.Queue
}

func openGoqite(ctx context.Context, path string) (*goqiteQ, error) {
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		return nil, err
	}
	// goqite's README: one connection per process.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	var n int
	if err := db.QueryRowContext(ctx, `select count(*) from sqlite_master where name = 'goqite'`).Scan(&n); err != nil {
		_ = db.Close()
		return nil, err
	}
	if n == 0 {
		schema, err := os.ReadFile(goqiteSchemaPath)
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("goqite schema (flag -goqite-schema): %w", err)
		}
		if _, err := db.ExecContext(ctx, string(schema)); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("goqite schema: %w", err)
		}
	}
	// Lease (goqite: timeout) 60 s like ours; MaxReceive 5 like our max attempts.
	q := goqite.New(goqite.NewOpts{DB: db, Name: "bench", Timeout: time.Minute, MaxReceive: 5})
	return &goqiteQ{db: db, q: q}, nil
}

func (g *goqiteQ) enqueue(ctx context.Context, body []byte) error {
	return g.q.Send(ctx, goqite.Message{Body: body})
}

func (g *goqiteQ) enqueueBatch(ctx context.Context, bodies [][]byte) error {
	// goqite has no batch call; its documented way is SendTx in one transaction.
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, b := range bodies {
		if err := g.q.SendTx(ctx, tx, goqite.Message{Body: b}); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

func (g *goqiteQ) fill(ctx context.Context, n int) error {
	// One message through the API, then copies of its row in one statement
	// (ids come from the column default, as for Send).
	if err := g.enqueue(ctx, payload); err != nil {
		return err
	}
	return cloneRows(ctx, g.db, "goqite", "rowid", n-1)
}

func (g *goqiteQ) claimComplete(ctx context.Context) (bool, error) {
	m, err := g.q.Receive(ctx)
	if err != nil || m == nil {
		return false, err
	}
	return true, g.q.Delete(ctx, m.ID)
}

func (g *goqiteQ) work(ctx context.Context, started func([]byte), done func(int)) error {
	for ctx.Err() == nil {
		m, err := g.q.ReceiveAndWait(ctx, pollInterval)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		started(m.Body)
		if err := g.q.Delete(context.WithoutCancel(ctx), m.ID); err != nil {
			return err
		}
		done(1)
	}
	return nil
}

func (g *goqiteQ) close() error { return g.db.Close() }

// ---------------------------------------------------------------- River

type benchArgs struct {
	T json.RawMessage `json:"t"`
}

func (benchArgs) Kind() string { return taskType }

type riverQ struct {
	db     *sql.DB
	client *river.Client[*sql.Tx]
	// onStart is called by the worker function (set by work).
	onStart atomic.Pointer[func([]byte)]
}

func openRiver(ctx context.Context, path string) (*riverQ, error) {
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		return nil, err
	}
	// riversqlite's package doc: one connection avoids SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	driver := riversqlite.New(db)
	m, err := rivermigrate.New(driver, nil)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("river migrate: %w", err)
	}
	r := &riverQ{db: db}
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(_ context.Context, j *river.Job[benchArgs]) error {
		if f := r.onStart.Load(); f != nil {
			(*f)(j.Args.T)
		}
		return nil
	}))
	client, err := river.NewClient(driver, &river.Config{
		// Tuned in River's favour: its defaults are a 100 ms fetch cooldown
		// and a 1 s poll, which cap a client near 1k jobs/s.
		FetchCooldown:     river.FetchCooldownMin,
		FetchPollInterval: pollInterval,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 100}},
		Workers:           workers,
		MaxAttempts:       5,
		Logger:            quietLogger(),
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	r.client = client
	return r, nil
}

func (r *riverQ) enqueue(ctx context.Context, body []byte) error {
	_, err := r.client.Insert(ctx, benchArgs{T: body}, nil)
	return err
}

func (r *riverQ) enqueueBatch(ctx context.Context, bodies [][]byte) error {
	ps := make([]river.InsertManyParams, len(bodies))
	for i, b := range bodies {
		ps[i] = river.InsertManyParams{Args: benchArgs{T: b}}
	}
	_, err := r.client.InsertMany(ctx, ps)
	return err
}

func (r *riverQ) fill(ctx context.Context, n int) error {
	if err := r.enqueue(ctx, payload); err != nil {
		return err
	}
	return cloneRows(ctx, r.db, "river_job", "id", n-1)
}

// claimComplete: River has no public claim call; its client fetches and
// completes jobs itself (see drainWithClient).
func (r *riverQ) claimComplete(context.Context) (bool, error) { return false, errUnsupported }

func (r *riverQ) work(ctx context.Context, started func([]byte), done func(int)) error {
	r.onStart.Store(&started)
	events, cancel := r.client.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: 1 << 20, Kinds: []river.EventKind{river.EventKindJobCompleted}})
	defer cancel()
	if err := r.client.Start(ctx); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			stopCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
			defer stop()
			return r.client.Stop(stopCtx)
		case ev := <-events:
			if ev != nil && ev.Kind == river.EventKindJobCompleted {
				done(1)
			}
		}
	}
}

func (r *riverQ) close() error { return r.db.Close() }

// ---------------------------------------------------------------- helpers

func fillBatches(ctx context.Context, a adapter, n, chunk int) error {
	bodies := make([][]byte, 0, chunk)
	for i := 0; i < n; i++ {
		bodies = append(bodies, payload)
		if len(bodies) == chunk || i == n-1 {
			if err := a.enqueueBatch(ctx, bodies); err != nil {
				return err
			}
			bodies = bodies[:0]
		}
	}
	return nil
}

// cloneRows inserts n copies of the first row of table (every column but
// the generated key and "id"), in statements of at most 100,000 rows: the
// fast bulk fill of the deep-queue workloads. The copied row was written
// by the queue's own API, so the copies are rows the queue would write.
func cloneRows(ctx context.Context, db *sql.DB, table, key string, n int) error {
	rows, err := db.QueryContext(ctx, "select name from pragma_table_info(?)", table)
	if err != nil {
		return err
	}
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			_ = rows.Close()
			return err
		}
		if c != key && c != "id" {
			cols = append(cols, c)
		}
	}
	_ = rows.Close()
	list := strings.Join(cols, ", ")
	for n > 0 {
		k := min(n, 100_000)
		q := "with recursive c(x) as (select 1 union all select x + 1 from c where x < " + strconv.Itoa(k) + ") " +
			"insert into " + table + " (" + list + ") select " + list + " from " + table + ", c" +
			" where " + table + "." + key + " = (select min(" + key + ") from " + table + ")"
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("bulk fill %s: %w", table, err)
		}
		n -= k
	}
	return nil
}

// checkpoint folds the WAL back into the database file so that its size is
// the size of the data.
func checkpoint(path string) error {
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec("pragma wal_checkpoint(TRUNCATE)")
	return err
}

func fileBytes(path string) int64 {
	var total int64
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if st, err := os.Stat(path + suffix); err == nil && !strings.HasSuffix(suffix, "shm") {
			total += st.Size()
		}
	}
	return total
}
