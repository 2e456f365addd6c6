package tests_go

// Schema 7 (migration 0007): queued and leased tasks share one depth row
// ('open'), so claims, releases and requeues write no counter; the view
// task_depth splits the row again by counting the leased tasks.

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

// counterRows reads task_counters as (kind, status, type, priority) -> n.
func counterRows(t *testing.T, path string) map[string]int64 {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT kind, status, type, priority, n FROM task_counters`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var kind, status, typ string
		var prio, n int64
		require.NoError(t, rows.Scan(&kind, &status, &typ, &prio, &n))
		out[kind+"/"+status+"/"+typ+"/"+string(rune('0'+prio))] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// viewDepth reads the queue_depth view as (type, status) -> tasks.
func viewDepth(t *testing.T, path string) map[[2]string]int64 {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT type, status, tasks FROM queue_depth`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[[2]string]int64{}
	for rows.Next() {
		var typ, status string
		var n int64
		require.NoError(t, rows.Scan(&typ, &status, &n))
		out[[2]string{typ, status}] = n
	}
	require.NoError(t, rows.Err())
	return out
}

func TestClaimsAndReleasesWriteNoCounterRow(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 5; i++ {
		h.enqueue(core.EnqueueParams{Type: "a", Priority: prio(int64(i % 2))})
	}
	h.enqueue(core.EnqueueParams{Type: "b"})
	before := counterRows(t, h.path)
	require.Equal(t, map[string]int64{"depth/open/a/0": 3, "depth/open/a/1": 2, "depth/open/b/" + string(rune('0'+100)): 1}, before)

	w := h.worker(core.WorkerConfig{Strategy: core.FIFO})
	ts := h.claim(w, 4)
	require.Equal(t, before, counterRows(t, h.path), "a claim moves no counter")
	requireDepthMatchesTable(t, h, "claim")
	st, err := h.q.Stats(h.ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), st.ByStatus[core.StatusQueued])
	require.Equal(t, int64(4), st.ByStatus[core.StatusLeased])
	require.Equal(t, int64(6), st.Total)
	require.Equal(t, map[[2]string]int64{{"a", "queued"}: 1, {"a", "leased"}: 4, {"b", "queued"}: 1}, viewDepth(t, h.path))

	require.NoError(t, w.Release(h.ctx, ts[0].ID, ts[0].LeaseToken))
	require.Equal(t, before, counterRows(t, h.path), "a release moves no counter")
	requireDepthMatchesTable(t, h, "release")

	// A lease that expires goes back to queued through the sweeper: no
	// depth row moves, the retry is counted.
	h.clock.Advance(2 * time.Hour)
	_, err = h.q.Sweep(h.ctx)
	require.NoError(t, err)
	after := counterRows(t, h.path)
	require.Equal(t, int64(3), after["total/retried/a/0"]+after["total/retried/a/1"])
	delete(after, "total/retried/a/0")
	delete(after, "total/retried/a/1")
	require.Equal(t, before, after, "a requeue moves no depth row")
	requireDepthMatchesTable(t, h, "sweep")

	// Completing moves the open row to completed.
	ts = h.claim(w, 1)
	require.NoError(t, w.Complete(h.ctx, ts[0].ID, ts[0].LeaseToken, nil))
	requireDepthMatchesTable(t, h, "complete")
	require.Equal(t, int64(1), counterRows(t, h.path)["depth/completed/a/0"])
}

// An upgrade from schema 6 folds the queued and leased depth rows into one
// open row per type and priority, and every reader agrees with the tasks.
func TestUpgradeToOpenDepthKeepsTheCounts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v6.db")
	old, err := core.OpenAtVersion(ctx, core.Options{Path: path, DisableSweeper: true}, 6)
	require.NoError(t, err)
	require.NoError(t, old.Close())

	// Schema 6 as the older library left it: counters for each status.
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	now := time.Now().UnixMilli()
	for i := 1; i <= 9; i++ {
		_, err = db.Exec(`INSERT INTO tasks (type, priority, status, run_after, created_at, updated_at)
			VALUES ('job', ?1, 'queued', ?2, ?2, ?2)`, i%2, now)
		require.NoError(t, err)
	}
	for _, stmt := range []string{
		`UPDATE tasks SET status = 'leased', attempts = 1, lease_owner = 'w', lease_token = 1,
			lease_expires_at = ?1 + 60000 WHERE id IN (1, 2, 3)`,
		`UPDATE tasks SET status = 'completed', attempts = 1, finished_at = ?1 WHERE id = 4`,
		`INSERT INTO task_counters (type, priority, kind, status, n)
			SELECT type, priority, 'depth', status, count(*) FROM tasks GROUP BY 1, 2, 4`,
		`INSERT INTO task_counters (type, priority, kind, status, n) VALUES ('job', 0, 'total', 'completed', 1)`,
	} {
		_, err = db.Exec(stmt, now)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())

	q := openUpgraded(t, ctx, path)
	// ids 1..9: priority 1 = odd ids (1, 3, 5, 7, 9), 0 = even (2, 4, 6, 8).
	require.Equal(t, map[string]int64{
		"depth/open/job/0":      3, // 2 leased, 6 and 8 queued
		"depth/open/job/1":      5, // 1 and 3 leased, 5, 7, 9 queued
		"depth/completed/job/0": 1, // 4
		"total/completed/job/0": 1,
	}, counterRows(t, path))
	h := &harness{t: t, ctx: ctx, q: q, path: path}
	requireDepthMatchesTable(t, h, "after the upgrade to schema 7")
	require.Equal(t, map[[2]string]int64{{"job", "queued"}: 5, {"job", "leased"}: 3, {"job", "completed"}: 1},
		viewDepth(t, path))

	// The engine carries on from those rows.
	w, err := q.RegisterWorker(ctx, core.WorkerConfig{ID: "w", Strategy: core.FIFO})
	require.NoError(t, err)
	ts, err := w.Claim(ctx, 2, 0)
	require.NoError(t, err)
	require.Len(t, ts, 2)
	require.NoError(t, w.Complete(ctx, ts[0].ID, ts[0].LeaseToken, nil))
	_, err = w.Fail(ctx, ts[1].ID, ts[1].LeaseToken, "no", false)
	require.NoError(t, err)
	requireDepthMatchesTable(t, h, "after a claim, a complete and a failure")

	// A recount writes the same rows.
	rep, err := q.Maintain(ctx, core.MaintenanceOptions{Recount: true})
	require.NoError(t, err)
	require.NotNil(t, rep.Recounted)
	require.Zero(t, *rep.Recounted, "the counters were right")
	requireDepthMatchesTable(t, h, "after a recount")
}
