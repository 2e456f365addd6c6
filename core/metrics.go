package core

import (
	"context"
	"encoding/json"
	"sort"
	"time"
)

// Metrics cost: every figure comes from a small table or an index range,
// never from a scan of the tasks table. Depth and totals read the counters
// that the engine keeps (task_counters, a few rows per type and priority);
// throughput and the latency percentiles read the tasks finished in the
// window, at most SampleLimit entries of the covering index tasks_finished;
// the oldest eligible task is one FIFO index probe; workers and expired
// leases read the worker registry and the partial index of leased tasks.
// See BENCHMARKS.md for the measured cost.

// MetricsOptions tune Queue.Metrics. The zero value gives the defaults.
type MetricsOptions struct {
	// Window is the span of throughput, failure rate and latency; default
	// 60 s, at most 24 h.
	Window time.Duration
	// SampleLimit caps how many of the tasks finished in the window are read
	// (the newest ones) for throughput and latency; default 10,000. When more
	// finished, the figures cover the newest SampleLimit (Throughput.Span
	// says how long they took), which keeps a call cheap at any rate.
	SampleLimit int
	// RecentFailures is how many of the latest failed tasks to list; default
	// 5; negative lists none.
	RecentFailures int
}

// Defaults of MetricsOptions.
const (
	DefaultMetricsWindow      = time.Minute
	DefaultMetricsSampleLimit = 10_000
	defaultRecentFailures     = 5
	maxMetricsWindow          = 24 * time.Hour
)

// Metrics is a snapshot of the queue's health. Each part is read on its own
// (not in one transaction), so parts may differ by the commits in between.
type Metrics struct {
	At time.Time
	// Depth: tasks by status, type and priority (rows with a count > 0), and
	// the same summed by status, by type and by priority.
	Total      int64
	ByStatus   map[Status]int64
	ByType     map[string]map[Status]int64
	ByPriority map[int64]map[Status]int64
	Depth      []DepthRow
	// OldestEligible is the lowest-id queued task that is due now; nil when none.
	OldestEligible *TaskAge
	// Throughput is what finished in the window.
	Throughput Throughput
	// Totals count every completion, failure, cancellation and retry since
	// the database was created (or upgraded to schema 4), by type and in
	// all; deleting tasks does not lower them (Prometheus counters).
	Totals       Totals
	TotalsByType map[string]Totals
	// Latency by task type over the tasks finished in the window, and over all types.
	Latency    map[string]LatencyStats
	LatencyAll LatencyStats
	// Sampled is true when more tasks finished in the window than
	// SampleLimit: throughput and percentiles cover the newest SampleLimit.
	Sampled        bool
	Workers        []WorkerMetrics
	WorkersByState map[WorkerState]int64
	// ExpiredLeases counts leased tasks whose lease has ended; the sweeper
	// requeues them within a second when a queue with a sweeper is open.
	ExpiredLeases int64
	// DeadLetters counts failed tasks (attempts exhausted or not retryable).
	DeadLetters    int64
	RecentFailures []FailureInfo
	// BusyRetries counts this process's retries on a locked database since Open.
	BusyRetries int64
	// Duration is how long collecting these metrics took.
	Duration time.Duration
}

// DepthRow is the number of tasks with one status, type and priority.
type DepthRow struct {
	Status   Status
	Type     string
	Priority int64
	Count    int64
}

// TaskAge describes the task that has waited longest among the eligible ones.
type TaskAge struct {
	TaskID     int64
	CreatedAt  time.Time
	EligibleAt time.Time     // its run_after
	Age        time.Duration // now - CreatedAt
	Waiting    time.Duration // now - EligibleAt: how long it has been claimable
}

// FinishCounts counts tasks that reached a terminal status.
type FinishCounts struct {
	Completed, Failed, Cancelled int64
}

// Totals are cumulative counts of terminal transitions and retries.
type Totals struct {
	FinishCounts
	// Retried counts failures with attempts left and expired leases,
	// requeued with backoff (a release is not a retry).
	Retried int64
}

// Throughput is what finished in the window.
type Throughput struct {
	FinishCounts
	Window time.Duration // as asked
	// Span is the time the counts cover: the window, or less when more than
	// SampleLimit tasks finished in it (from the oldest counted finish to now).
	Span time.Duration
	// PerSecond is (Completed+Failed)/Span.
	PerSecond float64
	// FailureRate is Failed/(Completed+Failed); nil when nothing finished.
	FailureRate *float64
	ByType      map[string]FinishCounts
}

// LatencyStats are percentiles over the tasks finished in the window.
type LatencyStats struct {
	// Wait: from enqueue to the first claim (started_at - created_at).
	Wait Percentiles
	// Run: from the last claim to the finish (finished_at - claimed_at) of
	// completed and failed tasks.
	Run Percentiles
}

// Percentiles of a set of durations, nearest rank; zero when Count is 0.
type Percentiles struct {
	Count         int64
	Sum           time.Duration
	P50, P95, P99 time.Duration
}

// WorkerState classifies a registered worker by its heartbeat.
type WorkerState string

// Worker states. Active: heartbeat within its lease. Stale: silent for more
// than one lease (its leases are expiring; it may come back). Gone: stopped,
// or silent for more than ten leases.
const (
	WorkerActive WorkerState = "active"
	WorkerStale  WorkerState = "stale"
	WorkerGone   WorkerState = "gone"
)

// WorkerMetrics is a registered worker with its health.
type WorkerMetrics struct {
	ID           string
	Host         string
	PID          int64
	Strategy     Strategy
	Capabilities json.RawMessage
	Types        []string
	Lease        time.Duration
	StartedAt    time.Time
	HeartbeatAt  time.Time
	StoppedAt    time.Time // zero while running
	HeartbeatAge time.Duration
	State        WorkerState
	Running      int64 // tasks it holds leased
}

// FailureInfo is a recently failed (dead-letter) task.
type FailureInfo struct {
	TaskID     int64
	Type       string
	Attempts   int64
	Error      string
	FinishedAt time.Time
}

func workerState(w WorkerMetrics) WorkerState {
	switch {
	case !w.StoppedAt.IsZero(), w.HeartbeatAge > 10*w.Lease:
		return WorkerGone
	case w.HeartbeatAge > w.Lease:
		return WorkerStale
	}
	return WorkerActive
}

// Metrics collects the queue's health: depth by status, type and priority,
// the oldest eligible task, throughput, failures and retries over a window,
// wait and run time percentiles by type, workers with their heartbeat age
// and state, expired leases, dead letters and busy retries. It is cheap
// enough to call every second on a database of a million tasks (see the
// cost note above). Errors: ErrInvalidArgument (options), ErrClosed.
func (q *Queue) Metrics(ctx context.Context, o MetricsOptions) (Metrics, error) {
	if q.isClosed() {
		return Metrics{}, ErrClosed
	}
	if o.Window == 0 {
		o.Window = DefaultMetricsWindow
	}
	if o.Window < time.Second || o.Window > maxMetricsWindow {
		return Metrics{}, invalidf("metrics window must be between 1s and 24h, got %v", o.Window)
	}
	if o.SampleLimit == 0 {
		o.SampleLimit = DefaultMetricsSampleLimit
	}
	if o.SampleLimit < 1 || o.SampleLimit > 1_000_000 {
		return Metrics{}, invalidf("metrics sample limit must be between 1 and 1000000, got %d", o.SampleLimit)
	}
	if o.RecentFailures == 0 {
		o.RecentFailures = defaultRecentFailures
	}
	if o.RecentFailures > 1000 {
		return Metrics{}, invalidf("recent failures must be at most 1000, got %d", o.RecentFailures)
	}
	started := time.Now()
	now := q.now()
	m := Metrics{
		At: now, ByStatus: map[Status]int64{}, ByType: map[string]map[Status]int64{},
		ByPriority: map[int64]map[Status]int64{}, Latency: map[string]LatencyStats{}, TotalsByType: map[string]Totals{},
		WorkersByState: map[WorkerState]int64{WorkerActive: 0, WorkerStale: 0, WorkerGone: 0},
		BusyRetries:    q.BusyRetries(), RecentFailures: []FailureInfo{}, Depth: []DepthRow{},
	}
	for _, s := range []Status{StatusQueued, StatusLeased, StatusCompleted, StatusFailed, StatusCancelled} {
		m.ByStatus[s] = 0
	}

	rows, err := q.st.depthRows(ctx)
	if err != nil {
		return m, err
	}
	for _, r := range rows {
		m.Depth = append(m.Depth, r)
		m.Total += r.Count
		m.ByStatus[r.Status] += r.Count
		if m.ByType[r.Type] == nil {
			m.ByType[r.Type] = map[Status]int64{}
		}
		m.ByType[r.Type][r.Status] += r.Count
		if m.ByPriority[r.Priority] == nil {
			m.ByPriority[r.Priority] = map[Status]int64{}
		}
		m.ByPriority[r.Priority][r.Status] += r.Count
	}
	m.DeadLetters = m.ByStatus[StatusFailed]

	id, created, runAfter, err := q.st.oldestEligible(ctx, now)
	if err != nil {
		return m, err
	}
	if id != 0 {
		m.OldestEligible = &TaskAge{TaskID: id, CreatedAt: created, EligibleAt: runAfter,
			Age: now.Sub(created), Waiting: now.Sub(runAfter)}
	}

	totals, err := q.st.totalRows(ctx)
	if err != nil {
		return m, err
	}
	for _, t := range totals {
		bt := m.TotalsByType[t.Type]
		for _, c := range []*Totals{&bt, &m.Totals} {
			switch t.Event {
			case string(StatusCompleted):
				c.Completed += t.N
			case string(StatusFailed):
				c.Failed += t.N
			case string(StatusCancelled):
				c.Cancelled += t.N
			default:
				c.Retried += t.N
			}
		}
		m.TotalsByType[t.Type] = bt
	}
	if err := q.window(ctx, now, o, &m); err != nil {
		return m, err
	}

	if m.Workers, err = q.st.workerRows(ctx); err != nil {
		return m, err
	}
	for i := range m.Workers {
		w := &m.Workers[i]
		w.HeartbeatAge = max(now.Sub(w.HeartbeatAt), 0)
		w.State = workerState(*w)
		m.WorkersByState[w.State]++
	}
	if m.ExpiredLeases, _, err = q.st.expiredLeases(ctx, now); err != nil {
		return m, err
	}
	if o.RecentFailures > 0 {
		if m.RecentFailures, err = q.st.recentFailures(ctx, o.RecentFailures); err != nil {
			return m, err
		}
	}
	m.Duration = time.Since(started)
	return m, nil
}

// window fills throughput and latency from the tasks finished in the
// window (the newest SampleLimit of them).
func (q *Queue) window(ctx context.Context, now time.Time, o MetricsOptions, m *Metrics) error {
	rows, err := q.st.finishedSample(ctx, now.Add(-o.Window), now, o.SampleLimit)
	if err != nil {
		return err
	}
	m.Sampled = len(rows) >= o.SampleLimit
	t := Throughput{Window: o.Window, Span: o.Window, ByType: map[string]FinishCounts{}}
	if m.Sampled {
		t.Span = now.Sub(fromMillis(rows[len(rows)-1].Finished))
	}
	type sets struct{ wait, run []time.Duration }
	byType := map[string]*sets{}
	all := &sets{}
	for _, r := range rows {
		c := t.ByType[r.Type]
		for _, fc := range []*FinishCounts{&c, &t.FinishCounts} {
			switch r.Status {
			case StatusCompleted:
				fc.Completed++
			case StatusFailed:
				fc.Failed++
			case StatusCancelled:
				fc.Cancelled++
			}
		}
		t.ByType[r.Type] = c
		s := byType[r.Type]
		if s == nil {
			s = &sets{}
			byType[r.Type] = s
		}
		if r.HasStarted && r.Started >= r.Created {
			d := time.Duration(r.Started-r.Created) * time.Millisecond
			s.wait, all.wait = append(s.wait, d), append(all.wait, d)
		}
		if r.HasClaimed && r.Finished >= r.Claimed && (r.Status == StatusCompleted || r.Status == StatusFailed) {
			d := time.Duration(r.Finished-r.Claimed) * time.Millisecond
			s.run, all.run = append(s.run, d), append(all.run, d)
		}
	}
	done := t.Completed + t.Failed
	if t.Span > 0 {
		t.PerSecond = float64(done) / t.Span.Seconds()
	}
	if done > 0 {
		r := float64(t.Failed) / float64(done)
		t.FailureRate = &r
	}
	m.Throughput = t
	for typ, s := range byType {
		m.Latency[typ] = LatencyStats{Wait: percentiles(s.wait), Run: percentiles(s.run)}
	}
	m.LatencyAll = LatencyStats{Wait: percentiles(all.wait), Run: percentiles(all.run)}
	return nil
}

// percentiles sorts ds and returns p50, p95 and p99 by nearest rank: the
// p-th percentile is the smallest value with at least p% of the values at
// or below it (rank ceil(p/100 * n)).
func percentiles(ds []time.Duration) Percentiles {
	n := len(ds)
	if n == 0 {
		return Percentiles{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(p int) time.Duration {
		rank := (p*n + 99) / 100 // ceil(p*n/100) in integers: no rounding surprises
		return ds[min(max(rank, 1), n)-1]
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Percentiles{Count: int64(n), Sum: sum, P50: at(50), P95: at(95), P99: at(99)}
}
