package tests_go

import (
	"context"
	"database/sql"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

// Schema 6 writes fewer pages per enqueue: no AUTOINCREMENT (task_id_floor
// keeps ids from being reused) and tasks due at enqueue stay out of
// tasks_queued_delayed until a weighted claim finds them by id. These tests
// hold both to their promises.

func TestIDsAreNeverReusedAfterTheNewestTasksArePurged(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{Strategy: core.FIFO})
	for i := 0; i < 3; i++ {
		h.enqueue(core.EnqueueParams{})
	}
	for _, task := range h.claim(w, 3) {
		require.NoError(t, w.Complete(h.ctx, task.ID, task.LeaseToken, nil))
	}
	res, err := h.q.Purge(h.ctx, core.TaskFilter{})
	require.NoError(t, err)
	require.EqualValues(t, 3, res.Affected, "the table is empty now")

	require.EqualValues(t, 4, h.enqueue(core.EnqueueParams{}).ID, "one past the largest id ever used")
	batch, err := h.q.EnqueueMany(h.ctx, []core.EnqueueParams{{Type: "a"}, {Type: "b", IdempotencyKey: "k"}, {Type: "c"}})
	require.NoError(t, err)
	require.Equal(t, []int64{5, 6, 7}, []int64{batch[0].Task.ID, batch[1].Task.ID, batch[2].Task.ID})

	// Purging queued tasks, the newest among them, moves the floor too.
	res, err = h.q.Purge(h.ctx, core.TaskFilter{Statuses: []core.Status{core.StatusQueued}})
	require.NoError(t, err)
	require.EqualValues(t, 4, res.Affected)
	require.EqualValues(t, 8, h.enqueue(core.EnqueueParams{}).ID)
	_, err = h.q.Get(h.ctx, 7)
	require.ErrorIs(t, err, core.ErrNotFound, "a purged id stays gone")
}

// requireNoLostFreshTask checks the invariant the weighted race relies on:
// a queued task outside the race is in tasks_queued_delayed (wr_fresh = 0)
// or lies past the mark, where the next weighted claim looks.
func requireNoLostFreshTask(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	var lost int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM tasks WHERE status = 'queued' AND wr_key IS NULL
		AND wr_fresh = 1 AND id <= (SELECT mark FROM wr_clock)`).Scan(&lost))
	require.Zero(t, lost)
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM tasks WHERE status <> 'queued' AND wr_fresh = 1`).Scan(&lost))
	require.Zero(t, lost, "a task that left the queue is no longer fresh")
}

// A weighted worker sees every task, whichever way it came back to the
// queue: enqueued after its last claim, failed and retried by a FIFO
// worker, cancelled while queued and retried, requeued by the sweeper.
func TestWeightedClaimsFindTasksWhicheverWayTheyWereQueued(t *testing.T) {
	h := newHarness(t, func(o *core.Options) { o.Retry = core.RetryPolicy{Base: time.Millisecond, Cap: time.Millisecond} })
	wr := h.worker(core.WorkerConfig{ID: "wr", Strategy: core.WeightedRandom})

	var want []int64
	for i := 0; i < 4; i++ {
		want = append(want, h.enqueue(core.EnqueueParams{Priority: prio(int64(i % 3))}).ID)
	}
	first := h.claimOne(wr) // promotes all four, the mark moves past them
	require.Contains(t, want, first.ID)
	for i, id := range want {
		if id == first.ID {
			want = append(want[:i], want[i+1:]...)
			break
		}
	}
	requireNoLostFreshTask(t, h.path)

	// Enqueued after the mark: fresh.
	late := h.enqueue(core.EnqueueParams{})
	want = append(want, late.ID)
	// Taken by a FIFO worker before any weighted claim, then failed with a retry.
	viaFIFO := h.enqueue(core.EnqueueParams{Type: "f"})
	typed := h.worker(core.WorkerConfig{ID: "typed", Strategy: core.FIFO, Types: []string{"f"}})
	task := h.claimOne(typed)
	require.Equal(t, viaFIFO.ID, task.ID)
	_, err := typed.Fail(h.ctx, task.ID, task.LeaseToken, "again", true)
	require.NoError(t, err)
	h.clock.Advance(time.Second) // past the backoff
	want = append(want, viaFIFO.ID)
	// Cancelled while fresh and queued, then retried.
	cancelled := h.enqueue(core.EnqueueParams{})
	_, err = h.q.Cancel(h.ctx, cancelled.ID)
	require.NoError(t, err)
	_, err = h.q.Retry(h.ctx, cancelled.ID)
	require.NoError(t, err)
	want = append(want, cancelled.ID)
	// Leased by a FIFO worker that dies: the sweeper requeues it.
	orphan := h.enqueue(core.EnqueueParams{Type: "o"})
	dying := h.worker(core.WorkerConfig{ID: "dying", Strategy: core.FIFO, Types: []string{"o"}, Lease: time.Second})
	require.Equal(t, orphan.ID, h.claimOne(dying).ID)
	requireNoLostFreshTask(t, h.path)
	want = append(want, orphan.ID)
	h.clock.Advance(2 * time.Second)
	_, err = h.q.Sweep(h.ctx)
	require.NoError(t, err)
	h.clock.Advance(time.Second) // past the backoff of the requeue
	requireNoLostFreshTask(t, h.path)

	var got []int64
	for {
		ts := h.claim(wr, 1)
		if len(ts) == 0 {
			break
		}
		got = append(got, ts[0].ID)
		requireNoLostFreshTask(t, h.path)
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	require.Equal(t, want, got)
}

// A version-5 file (AUTOINCREMENT, sqlite_sequence ahead of the largest id
// after a purge, queued tasks outside the race) keeps all of it through the
// rebuild of version 6.
func TestUpgradeToVersion6KeepsIDsTasksAndLogs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v5.db")
	old, err := core.OpenAtVersion(ctx, core.Options{Path: path, DisableSweeper: true}, 5)
	require.NoError(t, err)
	require.NoError(t, old.Close())

	now := time.Now().UnixMilli()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	for i := 1; i <= 10; i++ {
		_, err = db.Exec(`INSERT INTO tasks (type, priority, status, run_after, created_at, updated_at)
			VALUES ('job', ?1, 'queued', ?2, ?2, ?2)`, i%3, now)
		require.NoError(t, err)
	}
	for _, stmt := range []string{
		`INSERT INTO task_logs (task_id, at, level, message) VALUES (2, ?1, 'info', 'kept')`,
		`DELETE FROM tasks WHERE id >= 8`, // sqlite_sequence says 10
		`UPDATE tasks SET run_after = ?1 + 3600000 WHERE id = 7`,
	} {
		_, err = db.Exec(stmt, now)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())

	q := openUpgraded(t, ctx, path)

	r, err := q.Enqueue(ctx, core.EnqueueParams{Type: "job"})
	require.NoError(t, err)
	require.EqualValues(t, 11, r.Task.ID, "ids deleted before the upgrade are not reused")
	logs, err := q.Logs(ctx, 2, 0)
	require.NoError(t, err)
	require.Len(t, logs, 1)
	require.Equal(t, "kept", logs[0].Message)

	w, err := q.RegisterWorker(ctx, core.WorkerConfig{ID: "wr", Strategy: core.WeightedRandom})
	require.NoError(t, err)
	var got []int64
	for {
		ts, err := w.Claim(ctx, 1, 0)
		require.NoError(t, err)
		if len(ts) == 0 {
			break
		}
		got = append(got, ts[0].ID)
	}
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	require.Equal(t, []int64{1, 2, 3, 4, 5, 6, 11}, got, "every due task, old and new; 7 is not due")
	requireNoLostFreshTask(t, path)

	// The rebuilt task_logs still cascades from tasks, and sqlite_sequence
	// no longer tracks tasks.
	db, err = sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	var parent, onDelete string
	require.NoError(t, db.QueryRow(`SELECT "table", on_delete FROM pragma_foreign_key_list('task_logs')`).Scan(&parent, &onDelete))
	require.Equal(t, "tasks", parent)
	require.Equal(t, "CASCADE", onDelete)
	var seq int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM sqlite_sequence WHERE name = 'tasks'`).Scan(&seq))
	require.Zero(t, seq)
}
