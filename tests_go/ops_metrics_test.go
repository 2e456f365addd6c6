package tests_go

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

// preparedWorkload runs a small, fully scripted history on the fake clock
// (jitter off, so backoffs are exact) and returns the harness at t0+9s. The
// expected metrics in the tests below are computed by hand from this script:
//
//	t0     enqueue 1,2,3 (email, p10), 4 (email, p100), 5 (report, p100),
//	       6 (report, p100, max_attempts 1), 7 (report, p5, delayed 1h), 8 (report, p100)
//	t0+1s  cancel 8 (queued); claim 1,2            wait 1000, 1000
//	t0+3s  complete 1, fail 2 (not retryable)      run 2000, 2000
//	t0+4s  claim 3,4                               wait 4000, 4000
//	t0+7s  complete 3; fail 4 retryable            run 3000; 4 requeued, due t0+8s
//	       claim 5,6                               wait 7000, 7000
//	t0+8s  complete 5                              run 1000
//	t0+9s  fail 6 retryable, no attempts left      run 2000: dead letter
func preparedWorkload(t *testing.T) *harness {
	h := newHarness(t, func(o *core.Options) {
		o.Retry = core.RetryPolicy{Base: time.Second, Cap: time.Minute, Jitter: 0}
	})
	w := h.worker(core.WorkerConfig{Strategy: core.FIFO, Lease: 30 * time.Second})
	for i := 0; i < 3; i++ {
		h.enqueue(core.EnqueueParams{Type: "email", Priority: prio(10)})
	}
	h.enqueue(core.EnqueueParams{Type: "email"})
	h.enqueue(core.EnqueueParams{Type: "report"})
	h.enqueue(core.EnqueueParams{Type: "report", MaxAttempts: 1})
	h.enqueue(core.EnqueueParams{Type: "report", Priority: prio(5), Delay: time.Hour})
	h.enqueue(core.EnqueueParams{Type: "report"})

	h.clock.Advance(time.Second)
	_, err := h.q.Cancel(h.ctx, 8)
	require.NoError(t, err)
	ts := h.claim(w, 2)
	require.Equal(t, []int64{1, 2}, ids(ts))
	h.clock.Advance(2 * time.Second)
	require.NoError(t, w.Complete(h.ctx, 1, ts[0].LeaseToken, nil))
	_, err = w.Fail(h.ctx, 2, ts[1].LeaseToken, "smtp down", false)
	require.NoError(t, err)

	h.clock.Advance(time.Second)
	ts = h.claim(w, 2)
	require.Equal(t, []int64{3, 4}, ids(ts))
	h.clock.Advance(3 * time.Second)
	require.NoError(t, w.Complete(h.ctx, 3, ts[0].LeaseToken, nil))
	t4, err := w.Fail(h.ctx, 4, ts[1].LeaseToken, "try again", true)
	require.NoError(t, err)
	require.Equal(t, core.StatusQueued, t4.Status)
	require.Equal(t, h.clock.Now().Add(time.Second), t4.RunAfter)
	ts = h.claim(w, 2)
	require.Equal(t, []int64{5, 6}, ids(ts))

	h.clock.Advance(time.Second)
	require.NoError(t, w.Complete(h.ctx, 5, ts[0].LeaseToken, nil))
	h.clock.Advance(time.Second)
	t6, err := w.Fail(h.ctx, 6, ts[1].LeaseToken, "bad input", true)
	require.NoError(t, err)
	require.Equal(t, core.StatusFailed, t6.Status)
	return h
}

func TestMetricsMatchHandComputedValuesOnAPreparedWorkload(t *testing.T) {
	h := preparedWorkload(t)
	m, err := h.q.Metrics(h.ctx, core.MetricsOptions{})
	require.NoError(t, err)
	now := h.clock.Now()
	t0 := clockStart

	require.Equal(t, now, m.At)
	require.Equal(t, int64(8), m.Total)
	require.Equal(t, map[core.Status]int64{"queued": 2, "leased": 0, "completed": 3, "failed": 2, "cancelled": 1}, m.ByStatus)
	require.Equal(t, map[string]map[core.Status]int64{
		"email":  {"completed": 2, "failed": 1, "queued": 1},
		"report": {"completed": 1, "failed": 1, "cancelled": 1, "queued": 1},
	}, m.ByType)
	require.Equal(t, map[int64]map[core.Status]int64{
		5:   {"queued": 1},
		10:  {"completed": 2, "failed": 1},
		100: {"queued": 1, "completed": 1, "failed": 1, "cancelled": 1},
	}, m.ByPriority)
	require.Equal(t, int64(2), m.DeadLetters)

	// Task 4 has been due again since t0+8s; 7 is not due.
	require.NotNil(t, m.OldestEligible)
	require.Equal(t, int64(4), m.OldestEligible.TaskID)
	require.Equal(t, 9*time.Second, m.OldestEligible.Age)
	require.Equal(t, time.Second, m.OldestEligible.Waiting)
	require.Equal(t, t0, m.OldestEligible.CreatedAt)

	// Finished in the window: completed 1,3 (email) and 5 (report); failed 2
	// (email), 6 (report); cancelled 8. Retried: 4 once.
	tp := m.Throughput
	require.Equal(t, core.FinishCounts{Completed: 3, Failed: 2, Cancelled: 1}, tp.FinishCounts)
	require.Equal(t, map[string]core.FinishCounts{
		"email":  {Completed: 2, Failed: 1},
		"report": {Completed: 1, Failed: 1, Cancelled: 1},
	}, tp.ByType)
	require.Equal(t, time.Minute, tp.Window)
	require.Equal(t, time.Minute, tp.Span)
	require.InDelta(t, 5.0/60.0, tp.PerSecond, 1e-12)
	require.Equal(t, core.Totals{FinishCounts: core.FinishCounts{Completed: 3, Failed: 2, Cancelled: 1}, Retried: 1},
		m.Totals)
	require.Equal(t, map[string]core.Totals{
		"email":  {FinishCounts: core.FinishCounts{Completed: 2, Failed: 1}, Retried: 1},
		"report": {FinishCounts: core.FinishCounts{Completed: 1, Failed: 1, Cancelled: 1}},
	}, m.TotalsByType)
	require.NotNil(t, tp.FailureRate)
	require.InDelta(t, 0.4, *tp.FailureRate, 1e-12)

	// Latency, nearest rank. email: wait 1000,1000,4000; run 2000,2000,3000.
	// report: wait 7000,7000; run 1000,2000 (8 was never started).
	require.Equal(t, core.LatencyStats{
		Wait: core.Percentiles{Count: 3, Sum: ms(6000), P50: ms(1000), P95: ms(4000), P99: ms(4000)},
		Run:  core.Percentiles{Count: 3, Sum: ms(7000), P50: ms(2000), P95: ms(3000), P99: ms(3000)},
	}, m.Latency["email"])
	require.Equal(t, core.LatencyStats{
		Wait: core.Percentiles{Count: 2, Sum: ms(14000), P50: ms(7000), P95: ms(7000), P99: ms(7000)},
		Run:  core.Percentiles{Count: 2, Sum: ms(3000), P50: ms(1000), P95: ms(2000), P99: ms(2000)},
	}, m.Latency["report"])
	require.Equal(t, core.LatencyStats{
		Wait: core.Percentiles{Count: 5, Sum: ms(20000), P50: ms(4000), P95: ms(7000), P99: ms(7000)},
		Run:  core.Percentiles{Count: 5, Sum: ms(10000), P50: ms(2000), P95: ms(3000), P99: ms(3000)},
	}, m.LatencyAll)
	require.False(t, m.Sampled)

	require.Len(t, m.RecentFailures, 2)
	require.Equal(t, int64(6), m.RecentFailures[0].TaskID)
	require.Equal(t, "bad input", m.RecentFailures[0].Error)
	require.Equal(t, now, m.RecentFailures[0].FinishedAt)
	require.Equal(t, int64(2), m.RecentFailures[1].TaskID)
	require.Equal(t, int64(0), m.ExpiredLeases)
}

func TestMetricsWindowLeavesOutOlderEventsButKeepsTheDepth(t *testing.T) {
	h := preparedWorkload(t)
	h.clock.Advance(2 * time.Minute)
	m, err := h.q.Metrics(h.ctx, core.MetricsOptions{Window: 30 * time.Second})
	require.NoError(t, err)
	require.Equal(t, core.FinishCounts{}, m.Throughput.FinishCounts)
	require.Equal(t, int64(3), m.Totals.Completed, "totals are cumulative")
	require.Zero(t, m.Throughput.PerSecond)
	require.Nil(t, m.Throughput.FailureRate)
	require.Zero(t, m.LatencyAll.Wait.Count)
	require.Empty(t, m.Latency)
	require.Equal(t, int64(8), m.Total)

	wide, err := h.q.Metrics(h.ctx, core.MetricsOptions{Window: 10 * time.Minute})
	require.NoError(t, err)
	require.Equal(t, int64(3), wide.Throughput.Completed)
	require.Equal(t, int64(5), wide.LatencyAll.Run.Count)
}

func TestMetricsSampleLimitKeepsTheNewestFinishes(t *testing.T) {
	h := preparedWorkload(t)
	m, err := h.q.Metrics(h.ctx, core.MetricsOptions{SampleLimit: 2})
	require.NoError(t, err)
	require.True(t, m.Sampled)
	// The two newest finishes are 6 (t0+9s) and 5 (t0+8s).
	require.Equal(t, core.Percentiles{Count: 2, Sum: ms(14000), P50: ms(7000), P95: ms(7000), P99: ms(7000)}, m.LatencyAll.Wait)
	// Throughput covers them: 2 finishes from t0+8s to now (t0+9s).
	require.Equal(t, core.FinishCounts{Completed: 1, Failed: 1}, m.Throughput.FinishCounts)
	require.Equal(t, time.Second, m.Throughput.Span)
	require.InDelta(t, 2.0, m.Throughput.PerSecond, 1e-12)
}

func TestMetricsClassifyWorkersByHeartbeatAge(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 3; i++ {
		h.enqueue(core.EnqueueParams{})
	}
	active := h.worker(core.WorkerConfig{ID: "active", Lease: 30 * time.Second, Strategy: core.LIFO,
		Capabilities: rawJSON(`{"gpu":true}`)})
	stale := h.worker(core.WorkerConfig{ID: "stale", Lease: time.Second})
	h.worker(core.WorkerConfig{ID: "silent", Lease: 100 * time.Millisecond})
	stopped := h.worker(core.WorkerConfig{ID: "stopped"})
	require.NoError(t, stopped.Close(h.ctx))
	h.claim(active, 2)
	h.claimOne(stale)
	h.clock.Advance(5 * time.Second)

	m, err := h.q.Metrics(h.ctx, core.MetricsOptions{})
	require.NoError(t, err)
	require.Equal(t, map[core.WorkerState]int64{"active": 1, "stale": 1, "gone": 2}, m.WorkersByState)
	byID := map[string]core.WorkerMetrics{}
	for _, w := range m.Workers {
		byID[w.ID] = w
	}
	require.Equal(t, core.WorkerActive, byID["active"].State)
	require.Equal(t, int64(2), byID["active"].Running)
	require.Equal(t, core.LIFO, byID["active"].Strategy)
	require.JSONEq(t, `{"gpu":true}`, string(byID["active"].Capabilities))
	require.Equal(t, 5*time.Second, byID["active"].HeartbeatAge)
	require.Equal(t, core.WorkerStale, byID["stale"].State)
	require.Equal(t, int64(1), byID["stale"].Running)
	require.Equal(t, core.WorkerGone, byID["silent"].State)
	require.Equal(t, core.WorkerGone, byID["stopped"].State)
	require.Equal(t, int64(1), m.ExpiredLeases, "the stale worker's 1 s lease ended 4 s ago")
	require.Equal(t, int64(3), m.ByStatus[core.StatusLeased])
}

func TestMetricsTextIsPrometheusExposition(t *testing.T) {
	h := preparedWorkload(t)
	h.enqueue(core.EnqueueParams{Type: "we\"ird\\type"})
	m, err := h.q.Metrics(h.ctx, core.MetricsOptions{})
	require.NoError(t, err)
	text := m.PrometheusText()
	for _, line := range []string{
		`prismq_tasks{status="completed",type="email"} 2`,
		`prismq_tasks{status="queued",type="we\"ird\\type"} 1`,
		`prismq_tasks_by_status{status="failed"} 2`,
		`prismq_tasks_by_priority{status="queued",priority="5"} 1`,
		`prismq_window_tasks{status="failed",type="report"} 1`,
		`prismq_task_retries_total{type="email"} 1`,
		`prismq_tasks_finished_total{status="completed",type="email"} 2`,
		`prismq_window_seconds 60`,
		`prismq_failure_ratio 0.4`,
		`prismq_task_wait_seconds{type="email",quantile="0.95"} 4`,
		`prismq_task_run_seconds{type="report",quantile="0.5"} 1`,
		`prismq_task_wait_seconds_count{type="report"} 2`,
		`prismq_task_wait_seconds_sum{type="report"} 14`,
		`prismq_workers{state="active"} 1`,
		`prismq_dead_letter_tasks 2`,
		`prismq_oldest_eligible_task_age_seconds 9`,
		"# TYPE prismq_busy_retries_total counter",
	} {
		require.Contains(t, text, line+"\n")
	}
	// Every line is a comment or "name{labels} value".
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		require.Regexp(t, `^[a-z_]+(\{.*\})? -?[0-9.e+-]+$`, line)
	}
}
