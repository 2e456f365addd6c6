package tests_go

// Multi-process throughput: P worker processes drain one database file.
// Run with
//
//	go test -run '^$' -bench 'Processes' -benchtime 1x -count 3 ./tests_go/

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prismq/queue/core"
)

const (
	drainRole     = "bench-drain"
	drainDBEnv    = "PRISMQ_BENCH_DB"
	drainIDEnv    = "PRISMQ_BENCH_WORKER"
	drainModeEnv  = "PRISMQ_BENCH_DRAIN_MODE" // "0": Claim + AckMany, "1": AckAndClaim, drainFloor: raw SQL
	drainFloor    = "floor"
	procsTasks    = 20_000
	procsClaimMax = 64
)

func init() { registerHelperRole(drainRole, drainQueue) }

// drainQueue is the child role: claim up to 64 tasks at a time and complete
// them with one AckMany until a claim comes back empty, then print how many
// tasks this process completed. Any error, including a rejected ack, fails
// the process.
func drainQueue() error {
	path, err := helperEnv(drainDBEnv)
	if err != nil {
		return err
	}
	id, err := helperEnv(drainIDEnv)
	if err != nil {
		return err
	}
	if os.Getenv(drainModeEnv) == drainFloor {
		return floorDrain(path, id)
	}
	ctx := context.Background()
	q, err := core.Open(ctx, core.Options{Path: path})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer func() { _ = q.Close() }()
	w, err := q.RegisterWorker(ctx, core.WorkerConfig{ID: id})
	if err != nil {
		return fmt.Errorf("register worker: %w", err)
	}
	if err := startBarrier(path, id); err != nil {
		return err
	}
	start := time.Now()
	done := 0
	acks := make([]core.Ack, 0, procsClaimMax)
	combined := os.Getenv(drainModeEnv) == "1"
	for combined {
		errs, ts, err := w.AckAndClaim(ctx, acks, procsClaimMax)
		if err != nil {
			return fmt.Errorf("ack and claim after %d tasks: %w", done, err)
		}
		for i, e := range errs {
			if e != nil {
				return fmt.Errorf("ack task %d: %w", acks[i].ID, e)
			}
		}
		done += len(acks)
		acks = acks[:0]
		if len(ts) == 0 {
			break
		}
		for _, t := range ts {
			acks = append(acks, core.Ack{ID: t.ID, Token: t.LeaseToken, Op: core.AckComplete})
		}
	}
	for !combined {
		ts, err := w.Claim(ctx, procsClaimMax, 0)
		if err != nil {
			return fmt.Errorf("claim after %d tasks: %w", done, err)
		}
		if len(ts) == 0 {
			break
		}
		acks = acks[:0]
		for _, t := range ts {
			acks = append(acks, core.Ack{ID: t.ID, Token: t.LeaseToken, Op: core.AckComplete})
		}
		errs, err := w.AckMany(ctx, acks)
		if err != nil {
			return fmt.Errorf("ack many after %d tasks: %w", done, err)
		}
		for i, e := range errs {
			if e != nil {
				return fmt.Errorf("ack task %d: %w", acks[i].ID, e)
			}
		}
		done += len(ts)
	}
	end := time.Now()
	busy := q.BusyRetries()
	if err := w.Close(ctx); err != nil {
		return fmt.Errorf("close worker: %w", err)
	}
	if err := q.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	_, err = fmt.Println(done, start.UnixNano(), end.UnixNano(), busy)
	return err
}

// startBarrier says the child is ready, then waits for the parent's go, so
// that the timed part is the drain, not process start-up.
func startBarrier(path, id string) error {
	if err := os.WriteFile(path+".ready-"+id, nil, 0o644); err != nil {
		return err
	}
	for {
		if _, err := os.Stat(path + ".go"); err == nil {
			return nil
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// BenchmarkProcesses: each iteration enqueues 20,000 tasks into a fresh
// file, starts P worker processes, waits until all have opened the queue,
// then lets them drain it with Claim(64) + AckMany. Reports completed tasks
// per second over the drain (first start to last finish, as the children
// measure it; process start-up is excluded).
func BenchmarkProcesses(b *testing.B) { benchProcesses(b, "0") }

// BenchmarkProcessesAckAndClaim: the same drain with AckAndClaim (one
// transaction per batch instead of two).
func BenchmarkProcessesAckAndClaim(b *testing.B) { benchProcesses(b, "1") }

// BenchmarkProcessesFloor: the same drain by the same number of processes
// with the least SQL and no engine (floorDrain in bench_floor_test.go): the
// driver's floor of BenchmarkProcesses.
func BenchmarkProcessesFloor(b *testing.B) { benchProcesses(b, drainFloor) }

func benchProcesses(b *testing.B, mode string) {
	for _, procs := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("procs=%d", procs), func(b *testing.B) {
			ctx := context.Background()
			total, span, busyRetries, cpu := 0, time.Duration(0), int64(0), time.Duration(0)
			// The children time the drain themselves; the benchmark timer runs
			// only while they drain, so that go test's b.N ramp-up ends (with
			// the timer stopped throughout, b.N would grow for ever).
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				path := filepath.Join(b.TempDir(), fmt.Sprintf("procs-%d.db", i))
				q, err := core.Open(ctx, core.Options{Path: path})
				if err != nil {
					b.Fatal(err)
				}
				fill(b, q, procsTasks)
				if err := q.Close(); err != nil {
					b.Fatal(err)
				}
				children := make([]*helperProcess, procs)
				for c := range children {
					children[c] = startHelper(ctx, b, drainRole,
						drainDBEnv+"="+path, fmt.Sprintf("%s=w%d", drainIDEnv, c), drainModeEnv+"="+mode)
				}
				waitReady(b, path, procs)
				if err := os.WriteFile(path+".go", nil, 0o644); err != nil {
					b.Fatal(err)
				}
				childCPU := childrenCPU()
				b.StartTimer()
				drained := 0
				var first, last int64
				for _, c := range children {
					out, err := c.Wait()
					if err != nil {
						b.Fatal(err)
					}
					var n int
					var start, end, busy int64
					if _, err := fmt.Sscan(strings.TrimSpace(out), &n, &start, &end, &busy); err != nil {
						b.Fatalf("helper output %q: %v", out, err)
					}
					drained += n
					busyRetries += busy
					if first == 0 || start < first {
						first = start
					}
					last = max(last, end)
				}
				b.StopTimer()
				cpu += childrenCPU() - childCPU
				if mode == drainFloor {
					checkFloorDrained(b, path, drained)
				} else {
					checkDrained(b, path, drained)
				}
				total += drained
				span += time.Duration(last - first)
			}
			b.ReportMetric(float64(total)/span.Seconds(), "tasks/s")
			// CPU of all children over their whole lives (open and close included).
			b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-us/task")
			// Transactions: Claim(64) and AckMany, about 2 per 64 tasks; AckAndClaim, 1.
			txnPerBatch := 2.0
			if mode == "1" {
				txnPerBatch = 1
			}
			b.ReportMetric(float64(busyRetries)/(float64(total)/float64(procsClaimMax)*txnPerBatch), "busy-retries/txn")
		})
	}
}

// waitReady waits until n children have opened the queue.
func waitReady(b *testing.B, path string, n int) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		m, err := filepath.Glob(path + ".ready-*")
		if err != nil {
			b.Fatal(err)
		}
		if len(m) >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d children became ready", len(m), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkDrained fails the benchmark unless every task completed exactly once.
func checkDrained(b *testing.B, path string, drained int) {
	b.Helper()
	if drained != procsTasks {
		b.Fatalf("children completed %d tasks, want %d", drained, procsTasks)
	}
	q, err := core.Open(context.Background(), core.Options{Path: path, DisableSweeper: true})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = q.Close() }()
	st, err := q.Stats(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if got := st.ByStatus[core.StatusCompleted]; got != procsTasks {
		b.Fatalf("%d tasks completed in the database, want %d (stats %+v)", got, procsTasks, st)
	}
}

// childrenCPU is the user+system CPU time of the waited-for children so far.
func childrenCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
