package tests_go

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, to edit the file behind the engine's back

	"github.com/prismq/queue/core"
)

// TestOpenMigratesAnOlderDatabaseKeepingItsTasks creates a version-1
// database, fills it the way a version-1 library would (plain SQL against the
// version-1 tables: the current engine may need tables that version 1 lacks),
// and opens it with the current library.
func TestOpenMigratesAnOlderDatabaseKeepingItsTasks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	require.Greater(t, core.LatestSchemaVersion(), 1, "there is something to migrate")

	old, err := core.OpenAtVersion(ctx, core.Options{Path: path, DisableSweeper: true}, 1)
	require.NoError(t, err)
	v, err := old.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, v)
	require.NoError(t, old.Close())

	now := time.Now().UnixMilli()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	for _, stmt := range []string{
		`INSERT INTO tasks (id, type, priority, payload, status, attempts, max_attempts, run_after, wr_key, created_at, updated_at, idempotency_key)
		 VALUES (1, 'job', 5, '{"n":1}', 'queued', 0, 5, ?1, 7.5, ?1, ?1, 'key-1')`,
		`INSERT INTO tasks (id, type, priority, payload, status, attempts, max_attempts, run_after, wr_key, created_at, updated_at)
		 VALUES (2, 'job', 0, '{}', 'queued', 0, 5, ?1, 12.25, ?1, ?1)`,
		`INSERT INTO tasks (id, type, priority, payload, status, attempts, max_attempts, run_after, created_at, updated_at)
		 VALUES (3, 'later', 100, '{}', 'queued', 0, 5, ?1 + 3600000, ?1, ?1)`,
		`INSERT INTO tasks (id, type, priority, payload, status, attempts, max_attempts, run_after, lease_expires_at, lease_owner, lease_token, created_at, updated_at, claimed_at, started_at)
		 VALUES (4, 'job', 100, '{}', 'leased', 1, 5, ?1, ?1 + 60000, 'old-worker', 1, ?1, ?1, ?1, ?1)`,
		`INSERT INTO tasks (id, type, priority, payload, status, attempts, max_attempts, run_after, lease_token, created_at, updated_at, finished_at, result)
		 VALUES (5, 'job', 100, '{}', 'completed', 1, 5, ?1, 1, ?1, ?1, ?1, '{"ok":true}')`,
		`INSERT INTO task_logs (task_id, at, level, message) VALUES (5, ?1, 'info', 'done')`,
		`INSERT INTO workers (id, strategy, lease_ms, started_at, heartbeat_at) VALUES ('old-worker', 'priority', 60000, ?1, ?1)`,
	} {
		_, err := db.Exec(stmt, now)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())

	q, err := core.Open(ctx, core.Options{Path: path, DisableSweeper: true})
	require.NoError(t, err)
	defer q.Close()
	v, err = q.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, core.LatestSchemaVersion(), v)

	stats, err := q.Stats(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 5, stats.Total)
	require.EqualValues(t, 3, stats.ByStatus[core.StatusQueued])
	one, err := q.Get(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, "key-1", one.IdempotencyKey)
	require.JSONEq(t, `{"n":1}`, string(one.Payload))
	require.EqualValues(t, 5, one.Priority)
	leased, err := q.Get(ctx, 4)
	require.NoError(t, err)
	require.Equal(t, core.StatusLeased, leased.Status)
	require.Equal(t, "old-worker", leased.LeaseOwner)
	done, err := q.Get(ctx, 5)
	require.NoError(t, err)
	require.JSONEq(t, `{"ok":true}`, string(done.Result))
	logs, err := q.Logs(ctx, 5, 0)
	require.NoError(t, err)
	require.Len(t, logs, 1)
	workers, err := q.Workers(ctx)
	require.NoError(t, err)
	require.Len(t, workers, 1)
	require.EqualValues(t, 1, workers[0].Running)

	// The migrated database works: the old lease is still fenced, the weighted
	// race goes on with the old keys, idempotency keys still hold.
	ow, err := q.RegisterWorker(ctx, core.WorkerConfig{ID: "old-worker"})
	require.NoError(t, err)
	require.NoError(t, ow.Complete(ctx, 4, 1, nil))
	wr, err := q.RegisterWorker(ctx, core.WorkerConfig{ID: "weighted", Strategy: core.WeightedRandom})
	require.NoError(t, err)
	got, err := wr.Claim(ctx, 5, 0)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, ids(got), "keys 7.5 then 12.25; the delayed task is not due")
	r, err := q.Enqueue(ctx, core.EnqueueParams{Type: "job", IdempotencyKey: "key-1"})
	require.NoError(t, err)
	require.False(t, r.Created)
	require.EqualValues(t, 1, r.Task.ID)
}

func TestOpeningTwiceDoesNotMigrateAgain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "q.db")
	for i := 0; i < 2; i++ {
		q, err := core.Open(ctx, core.Options{Path: path, DisableSweeper: true})
		require.NoError(t, err)
		require.NoError(t, q.Close())
	}
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	var rows, distinct int
	require.NoError(t, db.QueryRow(`SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&rows, &distinct))
	require.Equal(t, core.LatestSchemaVersion(), rows)
	require.Equal(t, rows, distinct)
}

func TestADatabaseNewerThanTheLibraryIsRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "future.db")
	q, err := core.Open(ctx, core.Options{Path: path, DisableSweeper: true})
	require.NoError(t, err)
	_, err = q.Enqueue(ctx, core.EnqueueParams{Type: "job"})
	require.NoError(t, err)
	require.NoError(t, q.Close())

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'from_the_future', 0)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	_, err = core.Open(ctx, core.Options{Path: path, DisableSweeper: true})
	require.ErrorIs(t, err, core.ErrSchema)
	require.Contains(t, err.Error(), "999")
}

func TestAFileThatIsNotADatabaseIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk.db")
	require.NoError(t, writeFile(path, []byte("this is not an SQLite database, just some text that is long enough to have a header")))
	_, err := core.Open(context.Background(), core.Options{Path: path, DisableSweeper: true})
	require.Error(t, err)
	require.ErrorIs(t, err, core.ErrSchema)
}

func TestOpenAtVersionZeroIsInvalid(t *testing.T) {
	_, err := core.OpenAtVersion(context.Background(), core.Options{Path: filepath.Join(t.TempDir(), "q.db")}, 0)
	require.ErrorIs(t, err, core.ErrInvalidArgument)
}
