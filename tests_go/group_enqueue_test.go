package tests_go

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

// Concurrent enqueues that the writer commits together share multi-row
// INSERTs (writer.mergeInserts). Each caller must get back its own tasks,
// in its own order, and idempotency keys must hold across the callers.
func TestConcurrentEnqueuesGetTheirOwnTasksBack(t *testing.T) {
	h := newHarness(t)
	type got struct {
		params core.EnqueueParams
		res    core.EnqueueResult
	}
	var mu sync.Mutex
	var all []got
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				var batch []core.EnqueueParams
				for k := 0; k <= i%3; k++ {
					p := core.EnqueueParams{
						Type:    fmt.Sprintf("g%d", g),
						Payload: json.RawMessage(fmt.Sprintf(`{"g":%d,"i":%d,"k":%d}`, g, i, k)),
					}
					if i%10 == 0 {
						p.IdempotencyKey = fmt.Sprintf("shared-%d", i) // every goroutine races for it
					}
					batch = append(batch, p)
				}
				rs, err := h.q.EnqueueMany(h.ctx, batch)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for k := range rs {
					all = append(all, got{batch[k], rs[k]})
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	ids := map[int64]bool{}
	keyOwner := map[string]int64{}
	createdPerKey := map[string]int{}
	for _, x := range all {
		if x.params.IdempotencyKey != "" {
			k := x.params.IdempotencyKey
			if id, ok := keyOwner[k]; ok {
				require.Equal(t, id, x.res.Task.ID, "key %s", k)
			}
			keyOwner[k] = x.res.Task.ID
			if x.res.Created {
				createdPerKey[k]++
			}
			continue
		}
		require.True(t, x.res.Created)
		require.False(t, ids[x.res.Task.ID], "id %d handed out twice", x.res.Task.ID)
		ids[x.res.Task.ID] = true
		require.Equal(t, x.params.Type, x.res.Task.Type)
		require.JSONEq(t, string(x.params.Payload), string(x.res.Task.Payload))
		stored := h.get(x.res.Task.ID)
		require.Equal(t, x.params.Type, stored.Type)
		require.JSONEq(t, string(x.params.Payload), string(stored.Payload))
	}
	for k, n := range createdPerKey {
		require.Equal(t, 1, n, "key %s created once", k)
	}
	require.Len(t, keyOwner, 10)
	requireDepthMatchesTable(t, h, "concurrent enqueues")
}

// EnqueueMany cuts a batch into multi-row INSERTs of 256, 64 and 16 rows
// and one statement of the exact size for the rest; the ids of each
// statement are worked out from its last insert rowid. Every size from 1 to
// 300 gets the tasks back in order with the ids that hold them.
func TestEveryBatchSizeGetsItsOwnIDs(t *testing.T) {
	h := newHarness(t)
	seen := map[int64]bool{}
	for n := 1; n <= 300; n++ {
		if n > 40 && n%16 != 0 && n%16 != 15 && n != 300 {
			continue // the cuts repeat; keep the sizes around each boundary
		}
		batch := make([]core.EnqueueParams, n)
		for i := range batch {
			batch[i] = core.EnqueueParams{Type: fmt.Sprintf("n%d", n), Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
		}
		rs, err := h.q.EnqueueMany(h.ctx, batch)
		require.NoError(t, err)
		require.Len(t, rs, n)
		for i, r := range rs {
			require.False(t, seen[r.Task.ID], "size %d: id %d handed out twice", n, r.Task.ID)
			seen[r.Task.ID] = true
			if i > 0 {
				require.Equal(t, rs[i-1].Task.ID+1, r.Task.ID, "size %d: ids of one batch are consecutive", n)
			}
			stored := h.get(r.Task.ID)
			require.Equal(t, batch[i].Type, stored.Type)
			require.JSONEq(t, string(batch[i].Payload), string(stored.Payload), "size %d, task %d", n, i)
		}
	}
}
