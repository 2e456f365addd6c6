package core

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// PrometheusText renders m in the Prometheus text exposition format
// (version 0.0.4), for an application's /metrics endpoint. Every series is
// prefixed prismq_; durations are in seconds. Window figures (prismq_window_*,
// throughput, failure ratio, latency summaries) cover Throughput.Span; the
// _total counters never decrease, so Prometheus can compute rates over any range.
func (m Metrics) PrometheusText() string {
	var b strings.Builder
	p := promWriter{b: &b}

	p.family("prismq_tasks", "gauge", "Tasks in the queue by status and type.")
	for _, typ := range sortedKeys(m.ByType) {
		for _, st := range sortedStatuses(m.ByType[typ]) {
			p.sample("prismq_tasks", m.ByType[typ][st], "status", string(st), "type", typ)
		}
	}
	p.family("prismq_tasks_by_status", "gauge", "Tasks in the queue by status.")
	for _, st := range sortedStatuses(m.ByStatus) {
		p.sample("prismq_tasks_by_status", m.ByStatus[st], "status", string(st))
	}
	p.family("prismq_tasks_by_priority", "gauge", "Tasks in the queue by status and priority (lower runs first).")
	prios := make([]int64, 0, len(m.ByPriority))
	for pr := range m.ByPriority {
		prios = append(prios, pr)
	}
	sort.Slice(prios, func(i, j int) bool { return prios[i] < prios[j] })
	for _, pr := range prios {
		for _, st := range sortedStatuses(m.ByPriority[pr]) {
			p.sample("prismq_tasks_by_priority", m.ByPriority[pr][st], "status", string(st),
				"priority", strconv.FormatInt(pr, 10))
		}
	}

	var age, waiting float64
	if m.OldestEligible != nil {
		age, waiting = m.OldestEligible.Age.Seconds(), m.OldestEligible.Waiting.Seconds()
	}
	p.family("prismq_oldest_eligible_task_age_seconds", "gauge",
		"Age (since enqueue) of the oldest task that is queued and due; 0 when none.")
	p.sample("prismq_oldest_eligible_task_age_seconds", age)
	p.family("prismq_oldest_eligible_task_waiting_seconds", "gauge",
		"How long the oldest eligible task has been claimable (since its run_after); 0 when none.")
	p.sample("prismq_oldest_eligible_task_waiting_seconds", waiting)

	t := m.Throughput
	p.family("prismq_window_seconds", "gauge", "Span of the window figures below.")
	p.sample("prismq_window_seconds", t.Span.Seconds())
	p.family("prismq_window_tasks", "gauge", "Tasks that completed, failed or were cancelled in the window, by type.")
	for _, typ := range sortedKeys(t.ByType) {
		c := t.ByType[typ]
		p.sample("prismq_window_tasks", c.Completed, "status", "completed", "type", typ)
		p.sample("prismq_window_tasks", c.Failed, "status", "failed", "type", typ)
		p.sample("prismq_window_tasks", c.Cancelled, "status", "cancelled", "type", typ)
	}
	p.family("prismq_tasks_finished_total", "counter",
		"Tasks that completed, failed or were cancelled since the database was created, by type.")
	for _, typ := range sortedKeys(m.TotalsByType) {
		c := m.TotalsByType[typ]
		p.sample("prismq_tasks_finished_total", c.Completed, "status", "completed", "type", typ)
		p.sample("prismq_tasks_finished_total", c.Failed, "status", "failed", "type", typ)
		p.sample("prismq_tasks_finished_total", c.Cancelled, "status", "cancelled", "type", typ)
	}
	p.family("prismq_task_retries_total", "counter",
		"Failures with attempts left and expired leases requeued with backoff, by type.")
	for _, typ := range sortedKeys(m.TotalsByType) {
		p.sample("prismq_task_retries_total", m.TotalsByType[typ].Retried, "type", typ)
	}
	p.family("prismq_throughput_tasks_per_second", "gauge", "Completed plus failed tasks per second over the window.")
	p.sample("prismq_throughput_tasks_per_second", t.PerSecond)
	if t.FailureRate != nil {
		p.family("prismq_failure_ratio", "gauge", "Failed / (completed + failed) over the window.")
		p.sample("prismq_failure_ratio", *t.FailureRate)
	}
	for _, l := range []struct {
		name, help string
		get        func(LatencyStats) Percentiles
	}{
		{"prismq_task_wait_seconds", "Enqueue to first claim of the tasks finished in the window.",
			func(s LatencyStats) Percentiles { return s.Wait }},
		{"prismq_task_run_seconds", "Last claim to finish of the tasks completed or failed in the window.",
			func(s LatencyStats) Percentiles { return s.Run }},
	} {
		p.family(l.name, "summary", l.help)
		for _, typ := range sortedKeys(m.Latency) {
			pc := l.get(m.Latency[typ])
			if pc.Count == 0 {
				continue
			}
			for _, q := range []struct {
				q string
				d time.Duration
			}{{"0.5", pc.P50}, {"0.95", pc.P95}, {"0.99", pc.P99}} {
				p.sample(l.name, q.d.Seconds(), "type", typ, "quantile", q.q)
			}
			p.sample(l.name+"_sum", pc.Sum.Seconds(), "type", typ)
			p.sample(l.name+"_count", pc.Count, "type", typ)
		}
	}
	p.family("prismq_latency_sampled", "gauge",
		"1 when more tasks finished in the window than the sample limit (percentiles cover the newest).")
	p.sample("prismq_latency_sampled", boolNum(m.Sampled))

	p.family("prismq_workers", "gauge", "Registered workers by state (active, stale, gone).")
	for _, st := range []WorkerState{WorkerActive, WorkerStale, WorkerGone} {
		p.sample("prismq_workers", m.WorkersByState[st], "state", string(st))
	}
	p.family("prismq_worker_info", "gauge", "One series per registered worker; its labels describe it.")
	for _, w := range m.Workers {
		p.sample("prismq_worker_info", 1, "worker", w.ID, "host", w.Host, "strategy", string(w.Strategy),
			"state", string(w.State))
	}
	p.family("prismq_worker_running_tasks", "gauge", "Tasks each worker holds leased.")
	for _, w := range m.Workers {
		p.sample("prismq_worker_running_tasks", w.Running, "worker", w.ID)
	}
	p.family("prismq_worker_heartbeat_age_seconds", "gauge", "Time since each worker's last heartbeat.")
	for _, w := range m.Workers {
		p.sample("prismq_worker_heartbeat_age_seconds", w.HeartbeatAge.Seconds(), "worker", w.ID)
	}

	p.family("prismq_expired_leases", "gauge", "Leased tasks whose lease has ended (the sweeper requeues them).")
	p.sample("prismq_expired_leases", m.ExpiredLeases)
	p.family("prismq_dead_letter_tasks", "gauge", "Failed tasks: attempts exhausted or not retryable.")
	p.sample("prismq_dead_letter_tasks", m.DeadLetters)
	p.family("prismq_busy_retries_total", "counter",
		"Retries on a database locked by another connection, in this process since the queue was opened.")
	p.sample("prismq_busy_retries_total", m.BusyRetries)
	p.family("prismq_metrics_duration_seconds", "gauge", "Time taken to collect these metrics.")
	p.sample("prismq_metrics_duration_seconds", m.Duration.Seconds())
	return b.String()
}

type promWriter struct{ b *strings.Builder }

func (p promWriter) family(name, kind, help string) {
	fmt.Fprintf(p.b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
}

// sample writes one series; labels are name, value pairs.
func (p promWriter) sample(name string, v any, labels ...string) {
	p.b.WriteString(name)
	if len(labels) > 0 {
		p.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				p.b.WriteByte(',')
			}
			p.b.WriteString(labels[i])
			p.b.WriteString(`="`)
			p.b.WriteString(promEscape(labels[i+1]))
			p.b.WriteByte('"')
		}
		p.b.WriteByte('}')
	}
	p.b.WriteByte(' ')
	switch x := v.(type) {
	case int64:
		p.b.WriteString(strconv.FormatInt(x, 10))
	case int:
		p.b.WriteString(strconv.Itoa(x))
	case float64:
		p.b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
	}
	p.b.WriteByte('\n')
}

// promEscape escapes a label value: backslash, double quote and newline.
func promEscape(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func boolNum(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sortedStatuses lists the statuses of m in lifecycle order.
func sortedStatuses(m map[Status]int64) []Status {
	out := []Status{}
	for _, s := range []Status{StatusQueued, StatusLeased, StatusCompleted, StatusFailed, StatusCancelled} {
		if _, ok := m[s]; ok {
			out = append(out, s)
		}
	}
	return out
}
