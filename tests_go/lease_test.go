package tests_go

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

// noJitter makes backoff exact: base 1 s, cap 1 min.
func noJitter(o *core.Options) {
	o.Retry = core.RetryPolicy{Base: time.Second, Cap: time.Minute, Jitter: 0}
}

func TestAStaleLeaseIsFencedOff(t *testing.T) {
	h := newHarness(t, noJitter)
	task := h.enqueue(core.EnqueueParams{})
	a := h.worker(core.WorkerConfig{ID: "a", Lease: 500 * time.Millisecond})
	b := h.worker(core.WorkerConfig{ID: "b", Lease: time.Minute})

	leaseA := h.claimOne(a)
	require.Equal(t, "a", leaseA.LeaseOwner)
	require.Equal(t, clockStart.Add(500*time.Millisecond), leaseA.LeaseExpiresAt)
	require.EqualValues(t, 1, leaseA.Attempts)

	h.clock.Advance(499 * time.Millisecond)
	r, err := h.q.Sweep(h.ctx)
	require.NoError(t, err)
	require.Equal(t, core.SweepResult{}, r, "the lease has not expired yet")

	h.clock.Advance(time.Millisecond)
	r, err = h.q.Sweep(h.ctx)
	require.NoError(t, err)
	require.Equal(t, core.SweepResult{Requeued: 1}, r)
	swept := h.get(task.ID)
	require.Equal(t, core.StatusQueued, swept.Status)
	require.EqualValues(t, 1, swept.Attempts, "the expired attempt counts")
	require.Equal(t, h.clock.Now().Add(time.Second), swept.RunAfter, "requeued with backoff")
	require.Contains(t, swept.LastError, "lease expired")

	h.clock.Advance(time.Second)
	leaseB := h.claimOne(b)
	require.Equal(t, task.ID, leaseB.ID)
	require.EqualValues(t, 2, leaseB.Attempts)
	require.NotEqual(t, leaseA.LeaseToken, leaseB.LeaseToken)

	before := h.get(task.ID)
	tok := leaseA.LeaseToken
	stale := map[string]func() error{
		"complete":   func() error { return a.Complete(h.ctx, task.ID, tok, rawJSON(`{"by":"a"}`)) },
		"fail":       func() error { _, err := a.Fail(h.ctx, task.ID, tok, "a failed", false); return err },
		"renew":      func() error { _, err := a.Renew(h.ctx, task.ID, tok, time.Hour); return err },
		"progress":   func() error { _, err := a.Progress(h.ctx, task.ID, tok, core.Progress{Percent: f64(50)}); return err },
		"release":    func() error { return a.Release(h.ctx, task.ID, tok) },
		"ack cancel": func() error { return a.AckCancel(h.ctx, task.ID, tok) },
		"ack many": func() error {
			errs, err := a.AckMany(h.ctx, []core.Ack{{ID: task.ID, Token: tok, Op: core.AckComplete}})
			require.NoError(t, err)
			return errs[0]
		},
		"worker b with a's token": func() error { return b.Complete(h.ctx, task.ID, tok, nil) },
	}
	for name, call := range stale {
		require.ErrorIs(t, call(), core.ErrLeaseLost, name)
		require.Equal(t, before, h.get(task.ID), "%s with a stale token changed nothing", name)
	}

	require.NoError(t, b.Complete(h.ctx, task.ID, leaseB.LeaseToken, rawJSON(`{"by":"b"}`)))
	done := h.get(task.ID)
	require.Equal(t, core.StatusCompleted, done.Status)
	require.JSONEq(t, `{"by":"b"}`, string(done.Result))
	require.ErrorIs(t, b.Complete(h.ctx, task.ID, leaseB.LeaseToken, nil), core.ErrLeaseLost, "a finished task holds no lease")
}

func TestHeartbeatRenewsTheLeasesOfTheWorkersTasks(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{ID: "w", Lease: 10 * time.Second})
	other := h.worker(core.WorkerConfig{ID: "other", Lease: 10 * time.Second})
	for i := 0; i < 3; i++ {
		h.enqueue(core.EnqueueParams{})
	}
	mine := h.claim(w, 2)
	theirs := h.claimOne(other)

	h.clock.Advance(8 * time.Second)
	hb, err := w.Heartbeat(h.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, hb.Renewed)
	require.Empty(t, hb.CancelRequested)
	for _, task := range mine {
		require.Equal(t, h.clock.Now().Add(10*time.Second), h.get(task.ID).LeaseExpiresAt)
	}
	require.Equal(t, clockStart.Add(10*time.Second), h.get(theirs.ID).LeaseExpiresAt, "another worker's lease is untouched")

	h.clock.Advance(8 * time.Second) // 16 s after the claims
	r, err := h.q.Sweep(h.ctx)
	require.NoError(t, err)
	require.Equal(t, core.SweepResult{Requeued: 1}, r, "only the lease that was not renewed expired")
	for _, task := range mine {
		require.Equal(t, core.StatusLeased, h.get(task.ID).Status)
	}
	require.Equal(t, core.StatusQueued, h.get(theirs.ID).Status)

	infos, err := h.q.Workers(h.ctx)
	require.NoError(t, err)
	require.Len(t, infos, 2)
	require.Equal(t, "other", infos[0].ID)
	require.Equal(t, "w", infos[1].ID)
	require.EqualValues(t, 2, infos[1].Running)
	require.Equal(t, clockStart.Add(8*time.Second), infos[1].HeartbeatAt)
}

func TestTheSweeperFailsATaskWhoseAttemptsAreExhausted(t *testing.T) {
	h := newHarness(t, noJitter)
	w := h.worker(core.WorkerConfig{Lease: time.Second})
	task := h.enqueue(core.EnqueueParams{MaxAttempts: 2})

	h.claimOne(w)
	h.clock.Advance(time.Second)
	r, err := h.q.Sweep(h.ctx)
	require.NoError(t, err)
	require.Equal(t, core.SweepResult{Requeued: 1}, r)

	h.clock.Advance(time.Second)
	h.claimOne(w)
	h.clock.Advance(time.Second)
	r, err = h.q.Sweep(h.ctx)
	require.NoError(t, err)
	require.Equal(t, core.SweepResult{Failed: 1}, r)

	dead := h.get(task.ID)
	require.Equal(t, core.StatusFailed, dead.Status)
	require.EqualValues(t, 2, dead.Attempts)
	require.Contains(t, dead.LastError, "lease expired")
	require.Equal(t, h.clock.Now(), dead.FinishedAt)
}

func TestTheBackgroundSweeperRequeuesExpiredLeases(t *testing.T) {
	h := newHarness(t, noJitter, func(o *core.Options) {
		o.DisableSweeper = false
		o.SweepInterval = 10 * time.Millisecond
	})
	w := h.worker(core.WorkerConfig{Lease: time.Second})
	task := h.enqueue(core.EnqueueParams{})
	h.claimOne(w)
	h.clock.Advance(time.Second)
	require.Eventually(t, func() bool {
		got, err := h.q.Get(h.ctx, task.ID)
		return err == nil && got.Status == core.StatusQueued
	}, 10*time.Second, 5*time.Millisecond)
}

func TestReleaseDoesNotCountTheAttempt(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{})
	task := h.enqueue(core.EnqueueParams{MaxAttempts: 1})
	for i := 0; i < 3; i++ {
		got := h.claimOne(w)
		require.EqualValues(t, 1, got.Attempts)
		require.NoError(t, w.Release(h.ctx, got.ID, got.LeaseToken))
		back := h.get(task.ID)
		require.Equal(t, core.StatusQueued, back.Status)
		require.EqualValues(t, 0, back.Attempts)
		require.True(t, back.LeaseExpiresAt.IsZero())
	}
	got := h.claimOne(w)
	require.NoError(t, w.Complete(h.ctx, got.ID, got.LeaseToken, nil))
	require.Equal(t, core.StatusCompleted, h.get(task.ID).Status, "a task with one attempt still ran after three releases")
}

func TestCancellingAQueuedTaskIsImmediate(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{})
	task := h.enqueue(core.EnqueueParams{})
	got, err := h.q.Cancel(h.ctx, task.ID)
	require.NoError(t, err)
	require.Equal(t, core.StatusCancelled, got.Status)
	require.Equal(t, h.clock.Now(), got.FinishedAt)
	require.Equal(t, got, h.get(task.ID))
	require.Empty(t, h.claim(w, 1))

	_, err = h.q.Cancel(h.ctx, task.ID)
	require.ErrorIs(t, err, core.ErrInvalidState, "cancelling twice")
	_, err = h.q.Cancel(h.ctx, 424242)
	require.ErrorIs(t, err, core.ErrNotFound)
}

func TestCancellingALeasedTaskAsksItsWorker(t *testing.T) {
	cases := []struct {
		name    string
		observe func(h *harness, w *core.Worker, task core.Task) bool
	}{
		{"the worker sees the request on heartbeat", func(h *harness, w *core.Worker, task core.Task) bool {
			hb, err := w.Heartbeat(h.ctx)
			require.NoError(h.t, err)
			return len(hb.CancelRequested) == 1 && hb.CancelRequested[0] == task.ID
		}},
		{"the worker sees the request on renew", func(h *harness, w *core.Worker, task core.Task) bool {
			info, err := w.Renew(h.ctx, task.ID, task.LeaseToken, 0)
			require.NoError(h.t, err)
			return info.CancelRequested
		}},
		{"the worker sees the request on progress", func(h *harness, w *core.Worker, task core.Task) bool {
			info, err := w.Progress(h.ctx, task.ID, task.LeaseToken, core.Progress{Current: ptrInt(3)})
			require.NoError(h.t, err)
			return info.CancelRequested
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name+" and ends cancelled on ack", func(t *testing.T) {
			h := newHarness(t)
			w := h.worker(core.WorkerConfig{})
			h.enqueue(core.EnqueueParams{})
			task := h.claimOne(w)
			require.False(t, tc.observe(h, w, task), "no request before cancel")

			requested, err := h.q.Cancel(h.ctx, task.ID)
			require.NoError(t, err)
			require.Equal(t, core.StatusLeased, requested.Status, "a leased task keeps running until its worker stops")
			require.True(t, requested.CancelRequested)

			require.True(t, tc.observe(h, w, task))
			require.NoError(t, w.AckCancel(h.ctx, task.ID, task.LeaseToken))
			done := h.get(task.ID)
			require.Equal(t, core.StatusCancelled, done.Status)
			require.False(t, done.FinishedAt.IsZero())
		})
	}
}

func TestACancelRequestWinsWhenTheLeaseExpiresOrTheWorkerFailsOrReleases(t *testing.T) {
	cases := []struct {
		name   string
		finish func(h *harness, w *core.Worker, task core.Task)
	}{
		{"the sweeper cancels a requested task whose lease expired", func(h *harness, w *core.Worker, task core.Task) {
			h.clock.Advance(time.Minute)
			r, err := h.q.Sweep(h.ctx)
			require.NoError(h.t, err)
			require.Equal(h.t, core.SweepResult{Cancelled: 1}, r)
		}},
		{"a retryable failure of a requested task cancels it", func(h *harness, w *core.Worker, task core.Task) {
			_, err := w.Fail(h.ctx, task.ID, task.LeaseToken, "interrupted", true)
			require.NoError(h.t, err)
		}},
		{"releasing a requested task cancels it", func(h *harness, w *core.Worker, task core.Task) {
			require.NoError(h.t, w.Release(h.ctx, task.ID, task.LeaseToken))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			w := h.worker(core.WorkerConfig{Lease: time.Minute})
			h.enqueue(core.EnqueueParams{})
			task := h.claimOne(w)
			_, err := h.q.Cancel(h.ctx, task.ID)
			require.NoError(t, err)
			tc.finish(h, w, task)
			require.Equal(t, core.StatusCancelled, h.get(task.ID).Status)
			h.clock.Advance(time.Hour)
			require.Empty(t, h.claim(w, 1))
		})
	}
}

func ptrInt(v int64) *int64   { return &v }
func ptrStr(v string) *string { return &v }

func TestProgressIsStoredAndRenewsTheLease(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{Lease: 30 * time.Second})
	h.enqueue(core.EnqueueParams{})
	task := h.claimOne(w)

	h.clock.Advance(10 * time.Second)
	info, err := w.Progress(h.ctx, task.ID, task.LeaseToken,
		core.Progress{Percent: f64(42.5), Current: ptrInt(17), Total: ptrInt(40), Message: ptrStr("halfway there")})
	require.NoError(t, err)
	require.False(t, info.CancelRequested)
	require.Equal(t, h.clock.Now().Add(30*time.Second), info.ExpiresAt)

	got := h.get(task.ID)
	require.Equal(t, info.ExpiresAt, got.LeaseExpiresAt)
	require.Equal(t, core.Progress{Percent: f64(42.5), Current: ptrInt(17), Total: ptrInt(40), Message: ptrStr("halfway there")}, got.Progress)

	_, err = w.Progress(h.ctx, task.ID, task.LeaseToken, core.Progress{Current: ptrInt(18)})
	require.NoError(t, err)
	require.Equal(t, core.Progress{Percent: f64(42.5), Current: ptrInt(18), Total: ptrInt(40), Message: ptrStr("halfway there")},
		h.get(task.ID).Progress, "unset fields keep their values")

	h.clock.Advance(5 * time.Second)
	renewed, err := w.Renew(h.ctx, task.ID, task.LeaseToken, 2*time.Minute)
	require.NoError(t, err)
	require.Equal(t, h.clock.Now().Add(2*time.Minute), renewed.ExpiresAt, "renew takes an explicit lease")
}

func TestTaskLogsAppendAndRead(t *testing.T) {
	h := newHarness(t)
	task := h.enqueue(core.EnqueueParams{})
	require.NoError(t, h.q.AppendLog(h.ctx, task.ID, "", "started", nil))
	h.clock.Advance(1500 * time.Millisecond)
	require.NoError(t, h.q.AppendLog(h.ctx, task.ID, "warning", "slow disk", rawJSON(`{"ms": 900}`)))
	require.NoError(t, h.q.AppendLog(h.ctx, task.ID, "error", "gave up", rawJSON(`"text details"`)))

	logs, err := h.q.Logs(h.ctx, task.ID, 0)
	require.NoError(t, err)
	require.Len(t, logs, 3)
	require.Equal(t, "info", logs[0].Level, "the default level")
	require.Equal(t, "started", logs[0].Message)
	require.Nil(t, logs[0].Details)
	require.Equal(t, clockStart, logs[0].At)
	require.Equal(t, "warning", logs[1].Level)
	require.JSONEq(t, `{"ms":900}`, string(logs[1].Details))
	require.Equal(t, clockStart.Add(1500*time.Millisecond), logs[1].At)
	require.Equal(t, "error", logs[2].Level)
	require.JSONEq(t, `"text details"`, string(logs[2].Details))
	for _, l := range logs {
		require.Equal(t, task.ID, l.TaskID)
	}
	require.Less(t, logs[0].ID, logs[1].ID)

	first2, err := h.q.Logs(h.ctx, task.ID, 2)
	require.NoError(t, err)
	require.Equal(t, logs[:2], first2, "a limit keeps the oldest lines")

	other := h.enqueue(core.EnqueueParams{})
	none, err := h.q.Logs(h.ctx, other.ID, 0)
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestCompleteStoresTheResult(t *testing.T) {
	cases := []struct {
		name   string
		result string
		want   string // "" = no result
	}{
		{"an object result", `{"rows": 3, "files": ["a", "b"]}`, `{"rows":3,"files":["a","b"]}`},
		{"a scalar result", `42`, `42`},
		{"a string result", `"done"`, `"done"`},
		{"no result", ``, ``},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			w := h.worker(core.WorkerConfig{})
			h.enqueue(core.EnqueueParams{})
			task := h.claimOne(w)
			h.clock.Advance(2 * time.Second)
			var res []byte
			if tc.result != "" {
				res = []byte(tc.result)
			}
			require.NoError(t, w.Complete(h.ctx, task.ID, task.LeaseToken, res))
			done := h.get(task.ID)
			require.Equal(t, core.StatusCompleted, done.Status)
			require.Equal(t, h.clock.Now(), done.FinishedAt)
			require.Equal(t, clockStart, done.StartedAt)
			require.True(t, done.LeaseExpiresAt.IsZero())
			if tc.want == "" {
				require.Nil(t, done.Result)
				return
			}
			require.JSONEq(t, tc.want, string(done.Result))
			require.False(t, strings.ContainsAny(string(done.Result), "\n"), "stored as given, trimmed")
		})
	}
}

func TestTheSweeperHandlesMoreExpiredLeasesThanOneBatch(t *testing.T) {
	const n = 1200 // the sweeper works in batches of 500
	h := newHarness(t, noJitter)
	ps := make([]core.EnqueueParams, n)
	for i := range ps {
		ps[i] = core.EnqueueParams{Type: "job"}
	}
	_, err := h.q.EnqueueMany(h.ctx, ps)
	require.NoError(t, err)
	w := h.worker(core.WorkerConfig{Lease: time.Second})
	claimed := 0
	for claimed < n {
		claimed += len(h.claim(w, core.MaxClaim))
	}
	h.clock.Advance(time.Second)
	r, err := h.q.Sweep(h.ctx)
	require.NoError(t, err)
	require.Equal(t, core.SweepResult{Requeued: n}, r)
	stats, err := h.q.Stats(h.ctx)
	require.NoError(t, err)
	require.EqualValues(t, n, stats.ByStatus[core.StatusQueued])
}

// TestTasksThatComeBackRejoinTheWeightedRace: a released task, one failed
// with retries left, one retried by hand after a fatal failure and one swept
// after its lease expired are all claimable again by a weighted-random worker
// once due.
func TestTasksThatComeBackRejoinTheWeightedRace(t *testing.T) {
	h := newHarness(t, noJitter)
	w := h.worker(core.WorkerConfig{Strategy: core.WeightedRandom, Lease: time.Second})
	for i := 0; i < 4; i++ {
		h.enqueue(core.EnqueueParams{})
	}
	got := h.claim(w, 4)
	require.Len(t, got, 4)
	released, retried, revived, swept := got[0], got[1], got[2], got[3]

	require.NoError(t, w.Release(h.ctx, released.ID, released.LeaseToken))
	back, err := w.Fail(h.ctx, retried.ID, retried.LeaseToken, "try again", true)
	require.NoError(t, err)
	require.Equal(t, core.StatusQueued, back.Status)
	dead, err := w.Fail(h.ctx, revived.ID, revived.LeaseToken, "fatal", false)
	require.NoError(t, err)
	require.Equal(t, core.StatusFailed, dead.Status)
	_, err = h.q.Retry(h.ctx, revived.ID)
	require.NoError(t, err)
	h.clock.Advance(time.Second)
	r, err := h.q.Sweep(h.ctx)
	require.NoError(t, err)
	require.Equal(t, core.SweepResult{Requeued: 1}, r)
	require.Equal(t, core.StatusQueued, h.get(swept.ID).Status)

	h.clock.Advance(time.Minute) // past every backoff
	again := h.claim(w, 10)
	require.ElementsMatch(t, []int64{released.ID, retried.ID, revived.ID, swept.ID}, ids(again))
}

// TestAFailingCallInAGroupCommitDoesNotUndoTheOthers: calls from many
// goroutines share transactions; stale completes that fail inside them must
// not roll back the enqueues committed with them.
func TestAFailingCallInAGroupCommitDoesNotUndoTheOthers(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{})
	h.enqueue(core.EnqueueParams{})
	held := h.claimOne(w)

	const rounds, goroutines = 5, 32
	type outcome struct {
		res core.EnqueueResult
		err error
	}
	for round := 0; round < rounds; round++ {
		out := make([]outcome, goroutines)
		start := make(chan struct{})
		done := make(chan struct{}, goroutines)
		for i := 0; i < goroutines; i++ {
			go func() {
				defer func() { done <- struct{}{} }()
				<-start
				if i%2 == 1 {
					out[i].err = w.Complete(h.ctx, held.ID, held.LeaseToken+1, nil)
					return
				}
				out[i].res, out[i].err = h.q.Enqueue(h.ctx, core.EnqueueParams{Type: "job",
					IdempotencyKey: fmt.Sprintf("r%d-g%d", round, i)})
			}()
		}
		close(start)
		for i := 0; i < goroutines; i++ {
			<-done
		}
		for i, o := range out {
			if i%2 == 1 {
				require.ErrorIs(t, o.err, core.ErrLeaseLost)
				continue
			}
			require.NoError(t, o.err)
			require.True(t, o.res.Created)
			stored := h.get(o.res.Task.ID)
			require.Equal(t, fmt.Sprintf("r%d-g%d", round, i), stored.IdempotencyKey)
		}
	}
	stats, err := h.q.Stats(h.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1+rounds*goroutines/2, stats.Total)
	require.Equal(t, core.StatusLeased, h.get(held.ID).Status)
}
