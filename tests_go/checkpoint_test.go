package tests_go

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

// The writer never checkpoints inline; a background goroutine checkpoints
// every wal_autocheckpoint pages the queue wrote, so the tasks reach the
// database file while the queue is open. With the pragma at 0 nothing does.
func TestCheckpointsRunInTheBackground(t *testing.T) {
	payload := []byte(`{"blob":"` + strings.Repeat("x", 4000) + `"}`)
	run := func(t *testing.T, opts core.Options) (dbSize int64, q *core.Queue) {
		opts.Path = filepath.Join(t.TempDir(), "q.db")
		opts.DisableSweeper = true
		q, err := core.Open(context.Background(), opts)
		require.NoError(t, err)
		t.Cleanup(func() { _ = q.Close() })
		st, err := os.Stat(opts.Path)
		require.NoError(t, err)
		for i := 0; i < 300; i++ {
			_, err := q.Enqueue(context.Background(), core.EnqueueParams{Type: "big", Payload: payload})
			require.NoError(t, err)
		}
		return st.Size(), q
	}

	t.Run("every 20 pages", func(t *testing.T) {
		start, q := run(t, core.Options{Pragmas: map[string]string{"wal_autocheckpoint": "20"}})
		// Each enqueue writes two or more pages; the one that brings the
		// count to 20 wakes the checkpointer (a wake-up while one runs waits
		// for it). The last enqueues may stay in the WAL, the rest reach the
		// file.
		require.Eventually(t, func() bool {
			st, err := os.Stat(q.Path())
			return err == nil && st.Size() > start+1_000_000
		}, 30*time.Second, 5*time.Millisecond, "1.2 MB of payloads are copied into the database file")
		require.Positive(t, q.Checkpoints())
	})

	t.Run("wal_autocheckpoint=0 turns them off", func(t *testing.T) {
		start, q := run(t, core.Options{Pragmas: map[string]string{"wal_autocheckpoint": "0"}})
		require.Zero(t, q.Checkpoints())
		st, err := os.Stat(q.Path())
		require.NoError(t, err)
		require.Less(t, st.Size(), start+100_000, "everything is still in the WAL")
	})
}

// Checkpoints that run beside a busy writer never catch up with it, and the
// WAL only restarts from its beginning after one has: the writer's own
// checkpoint now and then keeps the -wal file from growing without bound.
func TestTheWALRestartsUnderSustainedWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, err := core.Open(context.Background(), core.Options{Path: path, DisableSweeper: true,
		Pragmas: map[string]string{"wal_autocheckpoint": "20"}})
	require.NoError(t, err)
	defer q.Close()
	payload := []byte(`{"blob":"` + strings.Repeat("x", 4000) + `"}`)
	for i := 0; i < 1500; i++ { // at least two pages each: 3,000+ WAL frames in all
		_, err := q.Enqueue(context.Background(), core.EnqueueParams{Type: "big", Payload: payload})
		require.NoError(t, err)
	}
	st, err := os.Stat(path + "-wal")
	require.NoError(t, err)
	require.Less(t, st.Size(), int64(1000*(4096+24)),
		"the WAL restarted: it never held 1,000 frames (restarts are due every 160 pages)")
}
