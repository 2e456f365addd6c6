package tests_go

// Multi-process throughput: P worker processes drain one database file.
// Run with
//
//	go test -run '^$' -bench 'Processes' -benchtime 1x -count 3 ./tests_go/

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prismq/queue/core"
)

const (
	drainRole     = "bench-drain"
	drainDBEnv    = "PRISMQ_BENCH_DB"
	drainIDEnv    = "PRISMQ_BENCH_WORKER"
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
	done := 0
	acks := make([]core.Ack, 0, procsClaimMax)
	for {
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
	if err := w.Close(ctx); err != nil {
		return fmt.Errorf("close worker: %w", err)
	}
	if err := q.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	_, err = fmt.Println(done)
	return err
}

// BenchmarkProcesses: each iteration enqueues 20,000 tasks into a fresh
// file (untimed), then starts P worker processes that drain it with
// Claim(64) + AckMany (timed, process start-up included). Reports
// completed tasks per second.
func BenchmarkProcesses(b *testing.B) {
	for _, procs := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("procs=%d", procs), func(b *testing.B) {
			ctx := context.Background()
			total := 0
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				path := filepath.Join(b.TempDir(), fmt.Sprintf("procs-%d.db", i))
				q, err := core.Open(ctx, core.Options{Path: path})
				if err != nil {
					b.Fatal(err)
				}
				fill(b, q, procsTasks)
				if err := q.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()

				children := make([]*helperProcess, procs)
				for c := range children {
					children[c] = startHelper(ctx, b, drainRole,
						drainDBEnv+"="+path, fmt.Sprintf("%s=w%d", drainIDEnv, c))
				}
				drained := 0
				for _, c := range children {
					out, err := c.Wait()
					if err != nil {
						b.Fatal(err)
					}
					n, err := strconv.Atoi(strings.TrimSpace(out))
					if err != nil {
						b.Fatalf("helper output %q: %v", out, err)
					}
					drained += n
				}

				b.StopTimer()
				checkDrained(b, path, drained)
				total += drained
				b.StartTimer()
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "tasks/s")
		})
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
