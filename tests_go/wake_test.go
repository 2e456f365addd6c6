package tests_go

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

// claimResult is what a blocking Claim in a goroutine returned.
type claimResult struct {
	tasks   []core.Task
	err     error
	elapsed time.Duration
}

// claimInBackground starts a blocking Claim and returns a channel with its
// result; started is closed just before Claim is called.
func claimInBackground(ctx context.Context, w *core.Worker, wait time.Duration) (started <-chan struct{}, result <-chan claimResult) {
	s := make(chan struct{})
	r := make(chan claimResult, 1)
	go func() {
		close(s)
		begin := time.Now()
		ts, err := w.Claim(ctx, 1, wait)
		r <- claimResult{tasks: ts, err: err, elapsed: time.Since(begin)}
	}()
	return s, r
}

// openReal opens a queue on the wall clock (blocking claims wait in real time).
func openReal(t *testing.T, path string) *core.Queue {
	t.Helper()
	q, err := core.Open(context.Background(), core.Options{Path: path, DisableSweeper: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func receive(t *testing.T, ch <-chan claimResult, within time.Duration) claimResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(within):
		t.Fatalf("the claim did not return within %v", within)
		return claimResult{}
	}
}

func TestABlockingClaimWakesForAnEnqueueInTheSameQueue(t *testing.T) {
	const wait = 5 * time.Second
	q := openReal(t, filepath.Join(t.TempDir(), "q.db"))
	w, err := q.RegisterWorker(context.Background(), core.WorkerConfig{ID: "w"})
	require.NoError(t, err)
	started, result := claimInBackground(context.Background(), w, wait)
	<-started
	r, err := q.Enqueue(context.Background(), core.EnqueueParams{Type: "job"})
	require.NoError(t, err)

	got := receive(t, result, 2*wait)
	require.NoError(t, got.err)
	require.Len(t, got.tasks, 1, "the claim returned the task instead of timing out")
	require.Equal(t, r.Task.ID, got.tasks[0].ID)
	require.Less(t, got.elapsed, wait)
}

func TestABlockingClaimWakesForAnEnqueueThroughAnotherConnection(t *testing.T) {
	const wait = 5 * time.Second
	path := filepath.Join(t.TempDir(), "q.db")
	consumer := openReal(t, path)
	producer := openReal(t, path) // its own connections: only data_version polling can tell the consumer
	w, err := consumer.RegisterWorker(context.Background(), core.WorkerConfig{ID: "w"})
	require.NoError(t, err)
	started, result := claimInBackground(context.Background(), w, wait)
	<-started
	r, err := producer.Enqueue(context.Background(), core.EnqueueParams{Type: "job"})
	require.NoError(t, err)

	got := receive(t, result, 2*wait)
	require.NoError(t, got.err)
	require.Len(t, got.tasks, 1, "the claim returned the task instead of timing out")
	require.Equal(t, r.Task.ID, got.tasks[0].ID)
	require.Less(t, got.elapsed, wait)
}

func TestABlockingClaimWakesForAnEnqueueByAnotherProcess(t *testing.T) {
	const wait = 30 * time.Second // covers starting a -race test binary
	path := filepath.Join(t.TempDir(), "q.db")
	q := openReal(t, path)
	w, err := q.RegisterWorker(context.Background(), core.WorkerConfig{ID: "w", Types: []string{"cross-process"}})
	require.NoError(t, err)
	started, result := claimInBackground(context.Background(), w, wait)
	<-started
	producer := startChild(t, "enqueue-one", path, "producer", "")
	producer.wait(wait)

	got := receive(t, result, 2*wait)
	require.NoError(t, got.err)
	require.Len(t, got.tasks, 1, "the claim returned the task instead of timing out")
	require.Equal(t, "cross-process", got.tasks[0].Type)
	require.Less(t, got.elapsed, wait)
}

func TestABlockingClaimWakesWhenADelayedTaskFallsDue(t *testing.T) {
	const delay, wait = 300 * time.Millisecond, 5 * time.Second
	q := openReal(t, filepath.Join(t.TempDir(), "q.db"))
	w, err := q.RegisterWorker(context.Background(), core.WorkerConfig{ID: "w"})
	require.NoError(t, err)
	r, err := q.Enqueue(context.Background(), core.EnqueueParams{Type: "job", Delay: delay})
	require.NoError(t, err)
	begin := time.Now()
	got, err := w.Claim(context.Background(), 1, wait)
	elapsed := time.Since(begin)
	require.NoError(t, err)
	require.Len(t, got, 1, "the claim returned the task instead of timing out")
	require.Equal(t, r.Task.ID, got[0].ID)
	require.False(t, time.Now().Before(r.Task.RunAfter), "not claimed before it was due")
	require.Less(t, elapsed, wait)
}

func TestABlockingClaimTimesOutEmpty(t *testing.T) {
	q := openReal(t, filepath.Join(t.TempDir(), "q.db"))
	_, err := q.Enqueue(context.Background(), core.EnqueueParams{Type: "not-mine"})
	require.NoError(t, err)
	w, err := q.RegisterWorker(context.Background(), core.WorkerConfig{ID: "w", Types: []string{"mine"}})
	require.NoError(t, err)
	begin := time.Now()
	got, err := w.Claim(context.Background(), 1, 200*time.Millisecond)
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Empty(t, got)
	require.GreaterOrEqual(t, time.Since(begin), 200*time.Millisecond, "it waited the whole timeout")
}

func TestCloseWakesABlockedClaimWithErrClosed(t *testing.T) {
	const wait = 30 * time.Second
	q := openReal(t, filepath.Join(t.TempDir(), "q.db"))
	w, err := q.RegisterWorker(context.Background(), core.WorkerConfig{ID: "w"})
	require.NoError(t, err)
	started, result := claimInBackground(context.Background(), w, wait)
	<-started
	require.NoError(t, q.Close())

	got := receive(t, result, wait)
	require.ErrorIs(t, got.err, core.ErrClosed)
	require.Empty(t, got.tasks)
	require.Less(t, got.elapsed, wait)
}

func TestCancellingTheContextEndsABlockedClaim(t *testing.T) {
	const wait = 30 * time.Second
	q := openReal(t, filepath.Join(t.TempDir(), "q.db"))
	w, err := q.RegisterWorker(context.Background(), core.WorkerConfig{ID: "w"})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	started, result := claimInBackground(ctx, w, wait)
	<-started
	cancel()

	got := receive(t, result, wait)
	require.True(t, errors.Is(got.err, context.Canceled), "got %v", got.err)
	require.Less(t, got.elapsed, wait)
}
