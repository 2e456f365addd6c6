package tests_go

// Engine benchmarks. Run with `make bench` (see BENCHMARKS.md); they are not
// part of `make test`. Each benchmark opens its own database in b.TempDir().

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prismq/queue/core"
)

// cpuTime is the CPU time (user + system) this process has used so far.
// Benchmarks report it per task next to wall time: on a shared, noisy
// machine it varies much less than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports CPU microseconds per task since start.
func reportCPU(b *testing.B, start time.Duration, tasks int) {
	b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(tasks), "cpu-us/task")
}

func benchQueue(b *testing.B) *core.Queue {
	b.Helper()
	q, err := core.Open(context.Background(), core.Options{Path: filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = q.Close() })
	return q
}

var benchPayload = []byte(`{"user":42,"action":"resize","path":"/img/a.png"}`)

// refillPaused fills n more tasks with the timer stopped and their CPU
// taken out of the account that started at *cpu0.
func refillPaused(b *testing.B, q *core.Queue, n int, cpu0 *time.Duration) {
	b.StopTimer()
	f0 := cpuTime()
	fill(b, q, n)
	*cpu0 += cpuTime() - f0
	b.StartTimer()
}

// fill enqueues n tasks in batches of 10,000 with priorities 0..9.
func fill(b *testing.B, q *core.Queue, n int) {
	b.Helper()
	ctx := context.Background()
	batch := make([]core.EnqueueParams, 0, 10000)
	for i := 0; i < n; i++ {
		p := int64(i % 10)
		batch = append(batch, core.EnqueueParams{Type: "bench", Payload: benchPayload, Priority: &p})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := q.EnqueueMany(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// BenchmarkEnqueueSingle: one enqueue per transaction, one goroutine.
func BenchmarkEnqueueSingle(b *testing.B) {
	q := benchQueue(b)
	ctx := context.Background()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := q.Enqueue(ctx, core.EnqueueParams{Type: "bench", Payload: benchPayload}); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu0, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkEnqueueConcurrent8: single enqueues from 8 goroutines (group commit).
func BenchmarkEnqueueConcurrent8(b *testing.B) {
	q := benchQueue(b)
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuTime()
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := q.Enqueue(ctx, core.EnqueueParams{Type: "bench", Payload: benchPayload}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	reportCPU(b, cpu0, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkEnqueueBatch1000: EnqueueMany of 1,000 tasks per transaction.
func BenchmarkEnqueueBatch1000(b *testing.B) {
	q := benchQueue(b)
	ctx := context.Background()
	batch := make([]core.EnqueueParams, 1000)
	for i := range batch {
		batch[i] = core.EnqueueParams{Type: "bench", Payload: benchPayload}
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := q.EnqueueMany(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu0, b.N*len(batch))
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkClaimComplete: claim one task and complete it, one goroutine, at
// queue depths 1k and 1M, for each strategy. The ratio of the 1M and 1k
// ns/op is the "flat in depth" claim of BENCHMARKS.md.
func BenchmarkClaimComplete(b *testing.B) {
	for _, depth := range []int{1_000, 1_000_000} {
		for _, s := range []core.Strategy{core.FIFO, core.LIFO, core.Priority, core.WeightedRandom} {
			b.Run(fmt.Sprintf("depth=%d/%s", depth, s), func(b *testing.B) {
				q := benchQueue(b)
				ctx := context.Background()
				fill(b, q, depth)
				w, err := q.RegisterWorker(ctx, core.WorkerConfig{ID: "bench", Strategy: s})
				if err != nil {
					b.Fatal(err)
				}
				// Warm-up. A weighted claim brings at most core.PromoteBatch new tasks
				// into its race, so the weighted worker first claims until
				// the whole fill has joined (a one-off cost of the fill).
				warm := 1
				if s == core.WeightedRandom {
					warm = depth/core.PromoteBatch + 2
				}
				for i := 0; i < warm; i++ {
					ts, err := w.Claim(ctx, 1, 0)
					if err != nil || len(ts) != 1 {
						b.Fatalf("warm-up claim: %v", err)
					}
					if err := w.Complete(ctx, ts[0].ID, ts[0].LeaseToken, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				cpu0 := cpuTime()
				for i := 0; i < b.N; i++ {
					if i > 0 && i%(depth/2) == 0 {
						refillPaused(b, q, depth/2, &cpu0) // keep the depth
					}
					ts, err := w.Claim(ctx, 1, 0)
					if err != nil || len(ts) != 1 {
						b.Fatalf("claim: %v (%d tasks)", err, len(ts))
					}
					if err := w.Complete(ctx, ts[0].ID, ts[0].LeaseToken, nil); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu0, b.N)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
			})
		}
	}
}

// BenchmarkClaimBatchAck: claim 64 at a time and settle them with one AckMany.
func BenchmarkClaimBatchAck(b *testing.B) {
	q := benchQueue(b)
	ctx := context.Background()
	fill(b, q, 100_000)
	w, _ := q.RegisterWorker(ctx, core.WorkerConfig{ID: "bench"})
	b.ResetTimer()
	cpu0 := cpuTime()
	done := 0
	for done < b.N {
		ts, err := w.Claim(ctx, 64, 0)
		if err != nil {
			b.Fatal(err)
		}
		if len(ts) == 0 {
			refillPaused(b, q, 100_000, &cpu0)
			continue
		}
		acks := make([]core.Ack, len(ts))
		for i, t := range ts {
			acks[i] = core.Ack{ID: t.ID, Token: t.LeaseToken, Op: core.AckComplete}
		}
		if _, err := w.AckMany(ctx, acks); err != nil {
			b.Fatal(err)
		}
		done += len(ts)
	}
	reportCPU(b, cpu0, done)
	b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkAckAndClaim: the same drain as ClaimBatchAck with AckAndClaim,
// which settles a batch and claims the next one in one transaction.
func BenchmarkAckAndClaim(b *testing.B) {
	q := benchQueue(b)
	ctx := context.Background()
	fill(b, q, 100_000)
	w, _ := q.RegisterWorker(ctx, core.WorkerConfig{ID: "bench"})
	b.ResetTimer()
	cpu0 := cpuTime()
	done := 0
	var acks []core.Ack
	for done < b.N {
		_, ts, err := w.AckAndClaim(ctx, acks, 64)
		if err != nil {
			b.Fatal(err)
		}
		done += len(acks)
		acks = acks[:0]
		if len(ts) == 0 {
			refillPaused(b, q, 100_000, &cpu0)
			continue
		}
		for _, t := range ts {
			acks = append(acks, core.Ack{ID: t.ID, Token: t.LeaseToken, Op: core.AckComplete})
		}
	}
	reportCPU(b, cpu0, done)
	b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkClaimLatency8: 8 goroutines claim and complete concurrently;
// reports p50/p99 claim latency and busy retries per claim.
func BenchmarkClaimLatency8(b *testing.B) {
	q := benchQueue(b)
	ctx := context.Background()
	fill(b, q, b.N+8)
	var mu sync.Mutex
	var lat []time.Duration
	var next atomic.Int64
	var wg sync.WaitGroup
	busy0 := q.BusyRetries()
	b.ResetTimer()
	cpu0 := cpuTime()
	for g := 0; g < 8; g++ {
		w, err := q.RegisterWorker(ctx, core.WorkerConfig{ID: fmt.Sprintf("w%d", g)})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, b.N/8+1)
			for next.Add(1) <= int64(b.N) {
				start := time.Now()
				ts, err := w.Claim(ctx, 1, 0)
				local = append(local, time.Since(start))
				if err != nil || len(ts) != 1 {
					b.Errorf("claim: %v", err)
					return
				}
				if err := w.Complete(ctx, ts[0].ID, ts[0].LeaseToken, nil); err != nil {
					b.Error(err)
					return
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
	}
	b.ReportMetric(float64(q.BusyRetries()-busy0)/float64(b.N), "busy-retries/claim")
	reportCPU(b, cpu0, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}
