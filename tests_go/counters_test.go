package tests_go

// The depth and total counters behind Stats and Metrics are kept by the
// engine (core/counters_sqlite.go), one statement per transaction. These
// tests walk every write path that moves a task between statuses and
// compare the counters with a full count of the tasks table after each step.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

type depthKey struct {
	status core.Status
	typ    string
	prio   int64
}

// requireDepthMatchesTable compares Metrics' depth rows with a GROUP BY
// over the tasks table.
func requireDepthMatchesTable(t *testing.T, h *harness, step string) {
	t.Helper()
	m, err := h.q.Metrics(h.ctx, core.MetricsOptions{})
	require.NoError(t, err)
	got := map[depthKey]int64{}
	for _, r := range m.Depth {
		got[depthKey{r.Status, r.Type, r.Priority}] = r.Count
	}
	db, err := sql.Open("sqlite", h.path)
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT status, type, priority, count(*) FROM tasks GROUP BY 1, 2, 3`)
	require.NoError(t, err)
	defer rows.Close()
	want := map[depthKey]int64{}
	for rows.Next() {
		var k depthKey
		var n int64
		require.NoError(t, rows.Scan(&k.status, &k.typ, &k.prio, &n))
		want[k] = n
	}
	require.NoError(t, rows.Err())
	require.Equal(t, want, got, "depth counters after %s", step)
}

func requireTotals(t *testing.T, h *harness, completed, failed, cancelled, retried int64) {
	t.Helper()
	m, err := h.q.Metrics(h.ctx, core.MetricsOptions{})
	require.NoError(t, err)
	require.Equal(t, completed, m.Totals.Completed, "completed")
	require.Equal(t, failed, m.Totals.Failed, "failed")
	require.Equal(t, cancelled, m.Totals.Cancelled, "cancelled")
	require.Equal(t, retried, m.Totals.Retried, "retried")
}

func TestCountersFollowEveryStatusChange(t *testing.T) {
	h := newHarness(t, func(o *core.Options) {
		o.Retry = core.RetryPolicy{Base: time.Second, Cap: time.Minute, Jitter: 0}
	})
	check := func(step string) { requireDepthMatchesTable(t, h, step) }

	// Enqueue: a batch over two types and two priorities, singles, a delayed
	// task and an idempotency key seen twice.
	var batch []core.EnqueueParams
	for i := 0; i < 40; i++ {
		batch = append(batch, core.EnqueueParams{Type: []string{"a", "b"}[i%2], Priority: prio(int64(1 + 4*(i%3%2)))})
	}
	_, err := h.q.EnqueueMany(h.ctx, batch)
	require.NoError(t, err)
	h.enqueue(core.EnqueueParams{Type: "c", MaxAttempts: 1})
	h.enqueue(core.EnqueueParams{Type: "c", Delay: time.Hour})
	r1, err := h.q.Enqueue(h.ctx, core.EnqueueParams{Type: "c", IdempotencyKey: "k"})
	require.NoError(t, err)
	r2, err := h.q.Enqueue(h.ctx, core.EnqueueParams{Type: "c", IdempotencyKey: "k"})
	require.NoError(t, err)
	require.False(t, r2.Created)
	require.Equal(t, r1.Task.ID, r2.Task.ID)
	check("enqueue")

	fifo := h.worker(core.WorkerConfig{ID: "fifo", Strategy: core.FIFO, Lease: 10 * time.Second})
	weighted := h.worker(core.WorkerConfig{ID: "wr", Strategy: core.WeightedRandom, Lease: 10 * time.Second})
	byPrio := h.worker(core.WorkerConfig{ID: "prio", Strategy: core.Priority, Lease: 10 * time.Second})

	// Claims: one, several, weighted (one at a time inside).
	one := h.claimOne(fifo)
	several := h.claim(byPrio, 6)
	require.Len(t, several, 6)
	drawn := h.claim(weighted, 3)
	require.Len(t, drawn, 3)
	check("claims")

	var completed, failed, cancelled, retried int64
	require.NoError(t, fifo.Complete(h.ctx, one.ID, one.LeaseToken, rawJSON(`{"ok":true}`)))
	completed++
	require.ErrorIs(t, fifo.Complete(h.ctx, one.ID, one.LeaseToken, nil), core.ErrLeaseLost)
	check("complete")

	// AckMany: complete, retryable and final failures, a release, a stale token.
	errs, err := byPrio.AckMany(h.ctx, []core.Ack{
		{ID: several[0].ID, Token: several[0].LeaseToken, Op: core.AckComplete},
		{ID: several[1].ID, Token: several[1].LeaseToken, Op: core.AckFail, Error: "again", Retryable: true},
		{ID: several[2].ID, Token: several[2].LeaseToken, Op: core.AckFail, Error: "bad", Retryable: false},
		{ID: several[3].ID, Token: several[3].LeaseToken, Op: core.AckRelease},
		{ID: several[4].ID, Token: several[4].LeaseToken + 1, Op: core.AckComplete},
	})
	require.NoError(t, err)
	for i, e := range errs {
		if i == 4 {
			require.ErrorIs(t, e, core.ErrLeaseLost)
		} else {
			require.NoError(t, e, "ack %d", i)
		}
	}
	completed++
	failed++
	retried++
	check("ack many")
	requireTotals(t, h, completed, failed, cancelled, retried)

	// Single fail, release, cancel of a queued and of a leased task.
	_, err = weighted.Fail(h.ctx, drawn[0].ID, drawn[0].LeaseToken, "boom", true)
	require.NoError(t, err)
	retried++
	require.NoError(t, weighted.Release(h.ctx, drawn[1].ID, drawn[1].LeaseToken))
	queued, err := h.q.List(h.ctx, core.ListFilter{Statuses: []core.Status{core.StatusQueued}, Limit: 1})
	require.NoError(t, err)
	_, err = h.q.Cancel(h.ctx, queued.Tasks[0].ID)
	require.NoError(t, err)
	cancelled++
	_, err = h.q.Cancel(h.ctx, drawn[2].ID)
	require.NoError(t, err)
	check("cancel requested")
	require.NoError(t, weighted.AckCancel(h.ctx, drawn[2].ID, drawn[2].LeaseToken))
	cancelled++
	check("fail, release, cancel")
	requireTotals(t, h, completed, failed, cancelled, retried)

	// Retry a failed task.
	_, err = h.q.Retry(h.ctx, several[2].ID)
	require.NoError(t, err)
	check("retry")

	// Sweeper: expired leases are requeued, failed (no attempts left) or cancelled.
	for {
		ts := h.claim(fifo, 50)
		if len(ts) == 0 {
			break
		}
	}
	leased, err := h.q.List(h.ctx, core.ListFilter{Statuses: []core.Status{core.StatusLeased}, Limit: 1000})
	require.NoError(t, err)
	var onlyOnce, cancelMe int64
	for _, task := range leased.Tasks {
		if task.MaxAttempts == 1 {
			onlyOnce = task.ID
		} else if cancelMe == 0 && task.LeaseOwner == "fifo" {
			cancelMe = task.ID
		}
	}
	require.NotZero(t, onlyOnce)
	_, err = h.q.Cancel(h.ctx, cancelMe)
	require.NoError(t, err)
	h.clock.Advance(time.Minute)
	res, err := h.q.Sweep(h.ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), res.Failed)
	require.Equal(t, int64(1), res.Cancelled)
	require.Positive(t, res.Requeued)
	failed++
	cancelled++
	retried += res.Requeued
	check("sweep")
	requireTotals(t, h, completed, failed, cancelled, retried)

	// Bulk requeue and purge, then retention.
	rq, err := h.q.Requeue(h.ctx, core.TaskFilter{Statuses: []core.Status{core.StatusFailed, core.StatusCancelled}})
	require.NoError(t, err)
	require.Positive(t, rq.Affected)
	check("requeue")
	for {
		ts := h.claim(fifo, 50)
		if len(ts) == 0 {
			break
		}
		acks := make([]core.Ack, len(ts))
		for i, task := range ts {
			acks[i] = core.Ack{ID: task.ID, Token: task.LeaseToken, Op: core.AckComplete}
		}
		_, err := fifo.AckMany(h.ctx, acks)
		require.NoError(t, err)
		completed += int64(len(ts))
	}
	check("drain")
	pg, err := h.q.Purge(h.ctx, core.TaskFilter{Statuses: []core.Status{core.StatusCompleted}, Limit: 5})
	require.NoError(t, err)
	require.Equal(t, int64(5), pg.Affected)
	check("purge")
	h.clock.Advance(48 * time.Hour)
	rep, err := h.q.Maintain(h.ctx, core.MaintenanceOptions{Retention: time.Hour, PurgeFailed: true})
	require.NoError(t, err)
	require.Positive(t, rep.Retention.TasksDeleted)
	check("retention")
	// Totals are monotonic: deletions leave them.
	requireTotals(t, h, completed, failed, cancelled, retried)
}

// Operations that fail inside a group-committed batch are rolled back to
// their savepoint; their counter changes must go with them.
func TestCountersSurviveFailedOperationsInGroupCommits(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{Strategy: core.FIFO})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				if _, err := h.q.Enqueue(h.ctx, core.EnqueueParams{Type: fmt.Sprintf("t%d", g%3)}); err != nil {
					t.Error(err)
					return
				}
				ts, err := w.Claim(h.ctx, 1, 0)
				if err != nil {
					t.Error(err)
					return
				}
				for _, task := range ts {
					// A stale token first (the op fails and is rolled back),
					// then the right one.
					if err := w.Complete(h.ctx, task.ID, task.LeaseToken+1, nil); !errors.Is(err, core.ErrLeaseLost) {
						t.Errorf("stale token: %v", err)
						return
					}
					if i%2 == 0 {
						err = w.Complete(h.ctx, task.ID, task.LeaseToken, nil)
					} else {
						_, err = w.Fail(h.ctx, task.ID, task.LeaseToken, "x", i%4 == 1)
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	requireDepthMatchesTable(t, h, "concurrent writes with failing operations")
}

// Writes made behind the library's back make the counters drift; a
// recount rebuilds them.
func TestRecountRepairsCountersAfterForeignWrites(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 20; i++ {
		h.enqueue(core.EnqueueParams{Type: []string{"x", "y"}[i%2], Priority: prio(int64(i % 3))})
	}
	db, err := sql.Open("sqlite", h.path)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(`UPDATE tasks SET status = 'cancelled', finished_at = created_at WHERE id <= 5`)
	require.NoError(t, err)
	_, err = db.Exec(`DELETE FROM tasks WHERE id BETWEEN 6 AND 8`)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO tasks (type, priority, status, run_after, created_at, updated_at) VALUES ('z', 7, 'queued', 0, 0, 0)`)
	require.NoError(t, err)

	st, err := h.q.Stats(h.ctx)
	require.NoError(t, err)
	require.Equal(t, int64(20), st.Total, "foreign writes bypass the counters")

	rep, err := h.q.Maintain(h.ctx, core.MaintenanceOptions{Recount: true})
	require.NoError(t, err)
	require.NotNil(t, rep.Recounted)
	require.Positive(t, *rep.Recounted)
	requireDepthMatchesTable(t, h, "recount")
	st, err = h.q.Stats(h.ctx)
	require.NoError(t, err)
	require.Equal(t, int64(18), st.Total)

	rep, err = h.q.Maintain(h.ctx, core.MaintenanceOptions{Recount: true})
	require.NoError(t, err)
	require.Equal(t, int64(0), *rep.Recounted, "a second recount finds nothing to correct")
}

// A version-4 file counts with triggers; the upgrade to 5 drops them and the
// engine carries on from the same rows, counting nothing twice (the rebuild
// of tasks in 6 keeps them too).
func TestCountersCarryOverTheUpgradeFromTriggers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v4.db")
	open := func(version int) *harness {
		var q *core.Queue
		var err error
		if version == 0 {
			q, err = core.Open(context.Background(), core.Options{Path: path, DisableSweeper: true})
		} else {
			q, err = core.OpenAtVersion(context.Background(), core.Options{Path: path, DisableSweeper: true}, version)
		}
		require.NoError(t, err)
		return &harness{t: t, ctx: context.Background(), q: q, path: path}
	}
	workload := func(h *harness) {
		for i := 0; i < 6; i++ {
			h.enqueue(core.EnqueueParams{Type: "up", Priority: prio(int64(i % 2))})
		}
		w := h.worker(core.WorkerConfig{Strategy: core.FIFO})
		ts := h.claim(w, 3)
		require.NoError(t, w.Complete(h.ctx, ts[0].ID, ts[0].LeaseToken, nil))
		_, err := w.Fail(h.ctx, ts[1].ID, ts[1].LeaseToken, "no", false)
		require.NoError(t, err)
		require.NoError(t, w.Close(h.ctx))
	}
	triggers := func() int {
		db, err := sql.Open("sqlite", path)
		require.NoError(t, err)
		defer db.Close()
		var n int
		require.NoError(t, db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'trigger'`).Scan(&n))
		return n
	}

	// Version 4 as an older library left it. The engine needs the latest
	// schema, so plain SQL plays that library; the triggers count its writes.
	h := open(4)
	require.Equal(t, 4, triggers())
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	now := time.Now().UnixMilli()
	for i := 0; i < 6; i++ {
		_, err = db.Exec(`INSERT INTO tasks (type, priority, status, run_after, created_at, updated_at)
			VALUES ('up', ?1, 'queued', ?2, ?2, ?2)`, i%2, now)
		require.NoError(t, err)
	}
	for _, stmt := range []string{
		`UPDATE tasks SET status = 'completed', attempts = 1, finished_at = ?1 WHERE id = 1`,
		`UPDATE tasks SET status = 'failed', attempts = 1, finished_at = ?1, last_error = 'no' WHERE id = 2`,
		`UPDATE tasks SET status = 'leased', attempts = 1, lease_owner = 'w', lease_expires_at = ?1 + 60000 WHERE id = 3`,
	} {
		_, err = db.Exec(stmt, now)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())
	requireDepthMatchesTable(t, h, "version 4")
	requireTotals(t, h, 1, 1, 0, 0)
	require.NoError(t, h.q.Close())

	h = open(0)
	defer h.q.Close()
	require.Equal(t, 0, triggers())
	requireDepthMatchesTable(t, h, "after the upgrade")
	workload(h)
	requireDepthMatchesTable(t, h, "latest version")
	requireTotals(t, h, 2, 2, 0, 0)
}
