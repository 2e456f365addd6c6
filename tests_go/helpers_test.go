package tests_go

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

// fakeClock is a core.Clock whose time only moves when a test advances it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// clockStart is a whole second, so that millisecond arithmetic in tests is exact.
var clockStart = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{now: clockStart} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d and returns the new time.
func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// harness is one open queue on its own file with a fake clock and the
// sweeper off (tests call Sweep when they mean to).
type harness struct {
	t     *testing.T
	ctx   context.Context
	q     *core.Queue
	clock *fakeClock
	path  string
}

// newHarness opens a fresh queue in t.TempDir(); mods adjust the options.
func newHarness(t *testing.T, mods ...func(*core.Options)) *harness {
	t.Helper()
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "queue.db")
	opts := core.Options{Path: path, Clock: clock, DisableSweeper: true}
	for _, m := range mods {
		m(&opts)
	}
	q, err := core.Open(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return &harness{t: t, ctx: context.Background(), q: q, clock: clock, path: path}
}

// worker registers a worker; the id defaults to "w".
func (h *harness) worker(cfg core.WorkerConfig) *core.Worker {
	h.t.Helper()
	if cfg.ID == "" {
		cfg.ID = "w"
	}
	w, err := h.q.RegisterWorker(h.ctx, cfg)
	require.NoError(h.t, err)
	return w
}

// enqueue adds one task and returns it.
func (h *harness) enqueue(p core.EnqueueParams) core.Task {
	h.t.Helper()
	if p.Type == "" {
		p.Type = "job"
	}
	r, err := h.q.Enqueue(h.ctx, p)
	require.NoError(h.t, err)
	require.True(h.t, r.Created)
	return r.Task
}

// claim claims up to n tasks without waiting.
func (h *harness) claim(w *core.Worker, n int) []core.Task {
	h.t.Helper()
	ts, err := w.Claim(h.ctx, n, 0)
	require.NoError(h.t, err)
	return ts
}

// claimOne claims exactly one task without waiting.
func (h *harness) claimOne(w *core.Worker) core.Task {
	h.t.Helper()
	ts := h.claim(w, 1)
	require.Len(h.t, ts, 1, "expected one claimable task")
	return ts[0]
}

// get reads a task.
func (h *harness) get(id int64) core.Task {
	h.t.Helper()
	task, err := h.q.Get(h.ctx, id)
	require.NoError(h.t, err)
	return task
}

func prio(p int64) *int64 { return &p }

func ids(ts []core.Task) []int64 {
	out := make([]int64, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func rawJSON(s string) json.RawMessage { return json.RawMessage(s) }

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

// openUpgraded opens an older file with the latest library (which migrates
// it) and checks that it reached the latest schema version.
func openUpgraded(t *testing.T, ctx context.Context, path string) *core.Queue {
	t.Helper()
	q, err := core.Open(ctx, core.Options{Path: path, DisableSweeper: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	v, err := q.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, core.LatestSchemaVersion(), v)
	return q
}
