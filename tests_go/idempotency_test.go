package tests_go

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

func TestTheSameIdempotencyKeyReturnsTheExistingTask(t *testing.T) {
	h := newHarness(t)
	first, err := h.q.Enqueue(h.ctx, core.EnqueueParams{Type: "job", Payload: rawJSON(`{"n":1}`), IdempotencyKey: "run-42"})
	require.NoError(t, err)
	require.True(t, first.Created)
	require.Equal(t, "run-42", first.Task.IdempotencyKey)

	second, err := h.q.Enqueue(h.ctx, core.EnqueueParams{Type: "other", Payload: rawJSON(`{"n":2}`), Priority: prio(1), IdempotencyKey: "run-42"})
	require.NoError(t, err)
	require.False(t, second.Created)
	require.Equal(t, first.Task.ID, second.Task.ID)
	require.Equal(t, "job", second.Task.Type, "the existing task is returned unchanged")
	require.JSONEq(t, `{"n":1}`, string(second.Task.Payload))

	other, err := h.q.Enqueue(h.ctx, core.EnqueueParams{Type: "job", IdempotencyKey: "run-43"})
	require.NoError(t, err)
	require.True(t, other.Created)
	require.NotEqual(t, first.Task.ID, other.Task.ID)

	stats, err := h.q.Stats(h.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, stats.Total)
}

func TestTheKeyHoldsAfterTheTaskFinished(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{})
	first, err := h.q.Enqueue(h.ctx, core.EnqueueParams{Type: "job", IdempotencyKey: "once"})
	require.NoError(t, err)
	got := h.claimOne(w)
	require.NoError(t, w.Complete(h.ctx, got.ID, got.LeaseToken, nil))

	again, err := h.q.Enqueue(h.ctx, core.EnqueueParams{Type: "job", IdempotencyKey: "once"})
	require.NoError(t, err)
	require.False(t, again.Created)
	require.Equal(t, first.Task.ID, again.Task.ID)
	require.Equal(t, core.StatusCompleted, again.Task.Status)
}

func TestARepeatedKeyWithinOneBatchCreatesOneTask(t *testing.T) {
	h := newHarness(t)
	res, err := h.q.EnqueueMany(h.ctx, []core.EnqueueParams{
		{Type: "job", IdempotencyKey: "k"},
		{Type: "job"},
		{Type: "job", IdempotencyKey: "k"},
	})
	require.NoError(t, err)
	require.True(t, res[0].Created)
	require.True(t, res[1].Created)
	require.False(t, res[2].Created)
	require.Equal(t, res[0].Task.ID, res[2].Task.ID)
	require.NotEqual(t, res[0].Task.ID, res[1].Task.ID)
}

func TestSixteenGoroutinesEnqueueingOneKeyCreateOneTask(t *testing.T) {
	h := newHarness(t)
	const n = 16
	results := make([]core.EnqueueResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = h.q.Enqueue(h.ctx, core.EnqueueParams{Type: "job", IdempotencyKey: "shared"})
		}()
	}
	close(start)
	wg.Wait()

	created := 0
	for i := 0; i < n; i++ {
		require.NoError(t, errs[i])
		require.Equal(t, results[0].Task.ID, results[i].Task.ID)
		if results[i].Created {
			created++
		}
	}
	require.Equal(t, 1, created)
	stats, err := h.q.Stats(h.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, stats.Total)
}
