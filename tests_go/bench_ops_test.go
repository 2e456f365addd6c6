package tests_go

// BenchmarkMetrics1M measures Queue.Metrics on a database of 1,000,000 tasks
// shaped like a busy queue: 100,000 queued (4 types, 10 priorities), 32
// leased by 8 workers, 880,000 completed over the last 24 hours with about
// 20 per second in the last hour (so the latency sample of the default 60 s
// window is full-sized: 1,200 tasks) and 1,000,000 rows to skip, 10,000
// failed and 10,000 cancelled. The file is built once with plain SQL (the
// engine's API would take minutes) and the counters and indexes of the
// current schema are filled the way the engine fills them. Run with
// `make bench` or:
//
//	go test -run '^$' -bench Metrics1M -benchtime 200x ./tests_go/

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/prismq/queue/core"
)

func buildMillionTaskDB(b *testing.B, path string) {
	b.Helper()
	ctx := context.Background()
	q, err := core.Open(ctx, core.Options{Path: path, DisableSweeper: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UnixMilli()
	day := int64(24 * time.Hour / time.Millisecond)
	hour := int64(time.Hour / time.Millisecond)
	stmts := []string{
		// 880,000 completed: 72,000 in the last hour (20/s), the rest over the 23 hours before.
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 880000)
		 INSERT INTO tasks (type, priority, payload, status, attempts, max_attempts, run_after, lease_token,
		                    created_at, updated_at, claimed_at, started_at, finished_at, result)
		 SELECT 'type' || (i % 4), i % 10, '{"n":' || i || '}', 'completed', 1, 5, f - 900, 1,
		        f - 900, f, f - 400 + (i % 7) * 10, f - 400 + (i % 7) * 10, f, '{"ok":true}'
		 FROM (SELECT i, CASE WHEN i <= 72000 THEN ?1 - (i * 50)
		                      ELSE ?1 - ?3 - ((i - 72000) * (?2 - ?3) / 808000) END AS f FROM n)`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
		 INSERT INTO tasks (type, priority, payload, status, attempts, max_attempts, run_after, lease_token,
		                    created_at, updated_at, claimed_at, started_at, finished_at, last_error)
		 SELECT 'type' || (i % 4), i % 10, '{}', 'failed', 5, 5, f, 5, f - 60000, f, f - 1000, f - 50000, f,
		        'boom ' || i
		 FROM (SELECT i, ?1 - i * 8000 AS f FROM n)`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
		 INSERT INTO tasks (type, priority, payload, status, run_after, created_at, updated_at, finished_at)
		 SELECT 'type' || (i % 4), i % 10, '{}', 'cancelled', ?1 - i * 8000, ?1 - i * 8000, ?1 - i * 8000, ?1 - i * 8000
		 FROM n`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
		 INSERT INTO tasks (type, priority, payload, status, run_after, wr_key, created_at, updated_at)
		 SELECT 'type' || (i % 4), i % 10, '{"n":' || i || '}', 'queued', ?1 - 5000 + i, i * 1.0,
		        ?1 - 5000 + i, ?1 - 5000 + i FROM n`,
		`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 7)
		 INSERT INTO workers (id, host, pid, strategy, capabilities, types, lease_ms, started_at, heartbeat_at)
		 SELECT 'worker-' || i, 'host', 1000 + i, 'priority', '{}', '[]', 60000, ?1 - ?3, ?1 - 2000 FROM n`,
		`UPDATE tasks SET status = 'leased', attempts = 1, lease_token = 1, lease_owner = 'worker-' || (id % 8),
		 lease_expires_at = ?1 + 60000, claimed_at = ?1 - 1000, started_at = ?1 - 1000, wr_key = NULL
		 WHERE id IN (SELECT id FROM tasks WHERE status = 'queued' ORDER BY id LIMIT 32)`,
		// The totals the engine's triggers would have counted for these finishes
		// (plain INSERTs of finished rows only enter the depth counters).
		`INSERT INTO task_counters (type, priority, kind, status, n)
		 SELECT type, priority, 'total', status, count(*) FROM tasks
		 WHERE status IN ('completed', 'failed', 'cancelled') GROUP BY 1, 2, 4`,
		`ANALYZE`,
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s, now, day, hour); err != nil {
			b.Fatalf("%v\n%s", err, s)
		}
	}
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkMetrics1M(b *testing.B) {
	path := filepath.Join(b.TempDir(), "million.db")
	start := time.Now()
	buildMillionTaskDB(b, path)
	b.Logf("built the 1,000,000-task database in %v", time.Since(start).Round(time.Second))
	ctx := context.Background()
	q, err := core.Open(ctx, core.Options{Path: path, DisableSweeper: true})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	m, err := q.Metrics(ctx, core.MetricsOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if m.Total != 1_000_000 {
		b.Fatalf("total %d, want 1,000,000", m.Total)
	}
	b.Logf("window %v: %d completed, latency sample %d tasks, %d workers, oldest eligible %v, totals %+v",
		m.Throughput.Span, m.Throughput.Completed, m.LatencyAll.Wait.Count, len(m.Workers), m.OldestEligible.Age, m.Totals)

	for _, bc := range []struct {
		name string
		o    core.MetricsOptions
		text bool
	}{
		{"window=60s", core.MetricsOptions{}, false},
		{"window=60s+prometheus", core.MetricsOptions{}, true},
		{"window=1h/sample=10000", core.MetricsOptions{Window: time.Hour}, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				m, err := q.Metrics(ctx, bc.o)
				if err != nil {
					b.Fatal(err)
				}
				if bc.text {
					_ = m.PrometheusText()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/call")
		})
	}
}
