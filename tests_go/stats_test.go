package tests_go

import (
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/prismq/queue/core"
)

// Stats reads the trigger-kept counters; after every kind of transition they
// must agree with a count of the rows themselves.
func TestStatsAgreeWithACountOfTheRowsAfterEveryKindOfTransition(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 30; i++ {
		h.enqueue(core.EnqueueParams{Type: []string{"a", "b", "c"}[i%3], Priority: prio(int64(i % 4))})
	}
	w := h.worker(core.WorkerConfig{ID: "w", Strategy: core.FIFO})
	ts := h.claim(w, 12)
	require.Len(t, ts, 12)
	require.NoError(t, w.Complete(h.ctx, ts[0].ID, ts[0].LeaseToken, nil))
	_, err := w.Fail(h.ctx, ts[1].ID, ts[1].LeaseToken, "boom", false)
	require.NoError(t, err)
	_, err = w.Fail(h.ctx, ts[2].ID, ts[2].LeaseToken, "again", true)
	require.NoError(t, err)
	require.NoError(t, w.Release(h.ctx, ts[3].ID, ts[3].LeaseToken))
	require.NoError(t, w.AckCancel(h.ctx, ts[4].ID, ts[4].LeaseToken))
	acks := []core.Ack{{ID: ts[5].ID, Token: ts[5].LeaseToken, Op: core.AckComplete},
		{ID: ts[6].ID, Token: ts[6].LeaseToken, Op: core.AckComplete}}
	_, err = w.AckMany(h.ctx, acks)
	require.NoError(t, err)
	_, err = h.q.Cancel(h.ctx, ts[7].ID+100) // unknown id: no change
	require.Error(t, err)
	_, err = h.q.Retry(h.ctx, ts[1].ID)
	require.NoError(t, err)

	got, err := h.q.Stats(h.ctx)
	require.NoError(t, err)

	db, err := sql.Open("sqlite", h.path)
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT status, type, count(*) FROM tasks GROUP BY status, type`)
	require.NoError(t, err)
	defer rows.Close()
	want := map[string]map[core.Status]int64{}
	var total int64
	for rows.Next() {
		var status, typ string
		var n int64
		require.NoError(t, rows.Scan(&status, &typ, &n))
		if want[typ] == nil {
			want[typ] = map[core.Status]int64{}
		}
		want[typ][core.Status(status)] = n
		total += n
	}
	require.NoError(t, rows.Err())
	require.Equal(t, want, got.ByType)
	require.Equal(t, total, got.Total)
	require.Equal(t, int64(30), got.Total)
	require.Equal(t, int64(3), got.ByStatus[core.StatusCompleted])
	require.Equal(t, int64(1), got.ByStatus[core.StatusCancelled])
}
