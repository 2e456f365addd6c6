package tests_go

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

func f64(v float64) *float64 { return &v }

func TestBackoffSchedule(t *testing.T) {
	std := core.RetryPolicy{Base: time.Second, Cap: 5 * time.Minute, Jitter: 0.2}
	cases := []struct {
		name    string
		policy  core.RetryPolicy
		attempt int64
		u       float64
		want    time.Duration
	}{
		{"the first retry waits the base", std, 1, 0, time.Second},
		{"the second retry waits twice the base", std, 2, 0, 2 * time.Second},
		{"the third retry waits four times the base", std, 3, 0, 4 * time.Second},
		{"the ninth retry waits 256 times the base", std, 9, 0, 256 * time.Second},
		{"the tenth retry is capped", std, 10, 0, 5 * time.Minute},
		{"a huge attempt number is capped without overflow", std, 1_000_000, 0, 5 * time.Minute},
		{"attempt 0 counts as the first", std, 0, 0, time.Second},
		{"jitter -1 shortens by the jitter fraction", std, 3, -1, 3200 * time.Millisecond},
		{"jitter +0.5 lengthens by half the fraction", std, 3, 0.5, 4400 * time.Millisecond},
		{"the cap applies after jitter", core.RetryPolicy{Base: time.Second, Cap: 6 * time.Second, Jitter: 0.2}, 4, -1, 6 * time.Second},
		{"a jittered delay above the cap is cut to the cap", core.RetryPolicy{Base: time.Second, Cap: 9 * time.Second, Jitter: 0.2}, 4, 0.999, 9 * time.Second},
		{"no jitter means the exact schedule", core.RetryPolicy{Base: 250 * time.Millisecond, Cap: time.Minute}, 3, -1, time.Second},
		{"a zero policy takes the default base", core.RetryPolicy{}, 1, 0, core.DefaultRetryPolicy.Base},
		{"a zero policy takes the default cap", core.RetryPolicy{}, 30, 0, core.DefaultRetryPolicy.Cap},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.policy.Backoff(tc.attempt, f64(tc.u)))
		})
	}
}

func TestBackoffJitterStaysWithinItsBoundsAndSpreads(t *testing.T) {
	p := core.RetryPolicy{Base: time.Second, Cap: time.Hour, Jitter: 0.2}
	lo, hi := 3200*time.Millisecond, 4800*time.Millisecond // 4s -/+ 20 %
	minSeen, maxSeen := time.Duration(1<<62), time.Duration(0)
	for i := 0; i < 2000; i++ {
		d := p.Backoff(3, nil)
		require.GreaterOrEqual(t, d, lo)
		require.LessOrEqual(t, d, hi)
		minSeen, maxSeen = min(minSeen, d), max(maxSeen, d)
	}
	// 2000 uniform draws all missing the outer 12.5 % of one side: p < 1e-100.
	require.Less(t, minSeen, 3400*time.Millisecond)
	require.Greater(t, maxSeen, 4600*time.Millisecond)
}

func TestTheQueuesRetryPolicyDefaults(t *testing.T) {
	require.Equal(t, core.RetryPolicy{Base: time.Second, Cap: 5 * time.Minute, Jitter: 0.2}, core.DefaultRetryPolicy)
	cases := []struct {
		name string
		in   core.RetryPolicy
		want core.RetryPolicy
	}{
		{"no policy means the default policy", core.RetryPolicy{}, core.DefaultRetryPolicy},
		{"a policy with only a base keeps the default cap and no jitter",
			core.RetryPolicy{Base: 2 * time.Second}, core.RetryPolicy{Base: 2 * time.Second, Cap: 5 * time.Minute}},
		{"a policy with only jitter keeps the default base and cap",
			core.RetryPolicy{Jitter: 0.5}, core.RetryPolicy{Base: time.Second, Cap: 5 * time.Minute, Jitter: 0.5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *core.Options) { o.Retry = tc.in })
			require.Equal(t, tc.want, h.q.Options().Retry)
		})
	}
}

// failOnce claims the task (which must be due) and fails it retryably; it
// returns the task after the failure and the delay until its run_after.
func failOnce(h *harness, w *core.Worker, id int64, msg string) (core.Task, time.Duration) {
	h.t.Helper()
	got := h.claimOne(w)
	require.Equal(h.t, id, got.ID)
	failed, err := w.Fail(h.ctx, got.ID, got.LeaseToken, msg, true)
	require.NoError(h.t, err)
	return failed, failed.RunAfter.Sub(h.clock.Now())
}

func TestARetryableFailureRequeuesAfterTheBackoff(t *testing.T) {
	h := newHarness(t, func(o *core.Options) {
		o.Retry = core.RetryPolicy{Base: 2 * time.Second, Cap: time.Minute, Jitter: 0}
	})
	w := h.worker(core.WorkerConfig{})
	task := h.enqueue(core.EnqueueParams{MaxAttempts: 5})

	for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second} {
		failed, delay := failOnce(h, w, task.ID, fmt.Sprintf("boom %d", i+1))
		require.Equal(t, core.StatusQueued, failed.Status)
		require.EqualValues(t, i+1, failed.Attempts)
		require.Equal(t, fmt.Sprintf("boom %d", i+1), failed.LastError)
		require.True(t, failed.LeaseExpiresAt.IsZero())
		require.Equal(t, want, delay, "retry %d", i+1)
		require.Equal(t, failed, h.get(task.ID), "the returned task is the stored one")

		h.clock.Advance(want - time.Millisecond)
		require.Empty(t, h.claim(w, 1), "not claimable before the backoff ends")
		h.clock.Advance(time.Millisecond)
	}
}

func TestPerTaskRetryOverridesShowInRunAfter(t *testing.T) {
	cases := []struct {
		name   string
		params core.EnqueueParams
		want   []time.Duration
	}{
		{"a task's base and cap override the queue's",
			core.EnqueueParams{RetryBase: 250 * time.Millisecond, RetryCap: time.Second},
			[]time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, time.Second}},
		{"a task's base alone keeps the queue's cap",
			core.EnqueueParams{RetryBase: 30 * time.Second},
			[]time.Duration{30 * time.Second, time.Minute, time.Minute, time.Minute}},
		{"a task's cap alone keeps the queue's base",
			core.EnqueueParams{RetryCap: 5 * time.Second},
			[]time.Duration{2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}},
		{"no override follows the queue's policy",
			core.EnqueueParams{},
			[]time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *core.Options) {
				o.Retry = core.RetryPolicy{Base: 2 * time.Second, Cap: time.Minute, Jitter: 0}
			})
			w := h.worker(core.WorkerConfig{})
			tc.params.MaxAttempts = 10
			task := h.enqueue(tc.params)
			require.Equal(t, tc.params.RetryBase, h.get(task.ID).RetryBase)
			require.Equal(t, tc.params.RetryCap, h.get(task.ID).RetryCap)
			for i, want := range tc.want {
				_, delay := failOnce(h, w, task.ID, "boom")
				require.Equal(t, want, delay, "retry %d", i+1)
				h.clock.Advance(delay)
			}
		})
	}
}

func TestAWorkersRetryPolicyOverridesTheQueuesButNotTheTasks(t *testing.T) {
	h := newHarness(t, func(o *core.Options) {
		o.Retry = core.RetryPolicy{Base: 2 * time.Second, Cap: time.Minute, Jitter: 0}
	})
	w := h.worker(core.WorkerConfig{Retry: &core.RetryPolicy{Base: 10 * time.Second, Cap: time.Hour, Jitter: 0}})
	plain := h.enqueue(core.EnqueueParams{})
	_, delay := failOnce(h, w, plain.ID, "boom")
	require.Equal(t, 10*time.Second, delay)

	own := h.enqueue(core.EnqueueParams{RetryBase: 100 * time.Millisecond})
	_, delay = failOnce(h, w, own.ID, "boom")
	require.Equal(t, 100*time.Millisecond, delay)
}

func TestJitteredBackoffStaysWithinItsBounds(t *testing.T) {
	h := newHarness(t, func(o *core.Options) {
		o.Retry = core.RetryPolicy{Base: time.Second, Cap: time.Minute, Jitter: 0.2}
	})
	w := h.worker(core.WorkerConfig{})
	for i := 0; i < 20; i++ {
		task := h.enqueue(core.EnqueueParams{})
		_, delay := failOnce(h, w, task.ID, "boom")
		require.GreaterOrEqual(t, delay, 800*time.Millisecond)
		require.LessOrEqual(t, delay, 1200*time.Millisecond)
	}
}

func TestAckManyFailuresFollowTheBackoffToo(t *testing.T) {
	h := newHarness(t, func(o *core.Options) {
		o.Retry = core.RetryPolicy{Base: 3 * time.Second, Cap: time.Minute, Jitter: 0}
	})
	w := h.worker(core.WorkerConfig{})
	a := h.enqueue(core.EnqueueParams{})
	b := h.enqueue(core.EnqueueParams{})
	got := h.claim(w, 2)
	require.Len(t, got, 2)
	errs, err := w.AckMany(h.ctx, []core.Ack{
		{ID: got[0].ID, Token: got[0].LeaseToken, Op: core.AckFail, Error: "again", Retryable: true},
		{ID: got[1].ID, Token: got[1].LeaseToken, Op: core.AckFail, Error: "fatal", Retryable: false},
	})
	require.NoError(t, err)
	require.Equal(t, []error{nil, nil}, errs)
	ta, tb := h.get(a.ID), h.get(b.ID)
	require.Equal(t, core.StatusQueued, ta.Status)
	require.Equal(t, clockStart.Add(3*time.Second), ta.RunAfter)
	require.Equal(t, "again", ta.LastError)
	require.Equal(t, core.StatusFailed, tb.Status)
	require.Equal(t, "fatal", tb.LastError)
}

func TestATaskThatFailsMaxAttemptsTimesIsDeadLettered(t *testing.T) {
	h := newHarness(t, func(o *core.Options) {
		o.Retry = core.RetryPolicy{Base: time.Second, Cap: time.Minute, Jitter: 0}
	})
	w := h.worker(core.WorkerConfig{})
	task := h.enqueue(core.EnqueueParams{MaxAttempts: 3})
	var last core.Task
	for i := 1; i <= 3; i++ {
		var delay time.Duration
		last, delay = failOnce(h, w, task.ID, fmt.Sprintf("boom %d", i))
		h.clock.Advance(max(delay, 0))
	}
	require.Equal(t, core.StatusFailed, last.Status)
	require.EqualValues(t, 3, last.Attempts)
	require.Equal(t, "boom 3", last.LastError)
	require.False(t, last.FinishedAt.IsZero())
	require.True(t, last.LeaseExpiresAt.IsZero())
	h.clock.Advance(time.Hour)
	require.Empty(t, h.claim(w, 1), "a dead-lettered task is never claimed again")
	require.Equal(t, last, h.get(task.ID))
}

func TestANonRetryableFailureEndsFailedAtOnce(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{})
	task := h.enqueue(core.EnqueueParams{MaxAttempts: 5})
	got := h.claimOne(w)
	failed, err := w.Fail(h.ctx, got.ID, got.LeaseToken, "bad input", false)
	require.NoError(t, err)
	require.Equal(t, core.StatusFailed, failed.Status)
	require.EqualValues(t, 1, failed.Attempts)
	require.Equal(t, "bad input", failed.LastError)
	require.Equal(t, h.clock.Now(), failed.FinishedAt)
	require.Equal(t, failed, h.get(task.ID))
}

func TestQueueRetryPutsFailedAndCancelledTasksBack(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{})

	failed := h.enqueue(core.EnqueueParams{MaxAttempts: 1})
	got := h.claimOne(w)
	_, err := w.Fail(h.ctx, got.ID, got.LeaseToken, "boom", true)
	require.NoError(t, err)
	require.Equal(t, core.StatusFailed, h.get(failed.ID).Status)

	cancelled := h.enqueue(core.EnqueueParams{})
	_, err = h.q.Cancel(h.ctx, cancelled.ID)
	require.NoError(t, err)

	h.clock.Advance(time.Second)
	for _, id := range []int64{failed.ID, cancelled.ID} {
		back, err := h.q.Retry(h.ctx, id)
		require.NoError(t, err)
		require.Equal(t, core.StatusQueued, back.Status)
		require.EqualValues(t, 0, back.Attempts, "attempts reset")
		require.True(t, back.FinishedAt.IsZero())
		require.Equal(t, h.clock.Now(), back.RunAfter, "due at once")
	}
	again := h.claim(w, 5)
	require.ElementsMatch(t, []int64{failed.ID, cancelled.ID}, ids(again))
	for _, task := range again {
		require.EqualValues(t, 1, task.Attempts)
	}
}

func TestQueueRetryRefusesOtherStatuses(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{})
	completed := h.enqueue(core.EnqueueParams{})
	got := h.claimOne(w)
	require.NoError(t, w.Complete(h.ctx, got.ID, got.LeaseToken, nil))
	leased := h.enqueue(core.EnqueueParams{})
	h.claimOne(w)
	queued := h.enqueue(core.EnqueueParams{})

	for name, id := range map[string]int64{"completed": completed.ID, "leased": leased.ID, "queued": queued.ID} {
		before := h.get(id)
		_, err := h.q.Retry(h.ctx, id)
		require.ErrorIs(t, err, core.ErrInvalidState, name)
		require.Equal(t, before, h.get(id), "%s: nothing changed", name)
	}
	_, err := h.q.Retry(h.ctx, 999_999)
	require.ErrorIs(t, err, core.ErrNotFound)
}
