package tests_go

// The driver's floor: the least SQL that any queue on this schema has to run
// for an operation, sent straight through database/sql and modernc.org/sqlite
// with the engine's pragmas, on a file the engine created (same tables, same
// indexes, same CHECK constraints). No engine code runs: no writer goroutine,
// no counters, no id floor, no JSON check in Go, no fencing. The engine's
// benchmarks of the same operation divided by these give how much the engine
// adds; what is left is the driver, SQLite and the machine. Run beside the
// engine's benchmarks in one command (see BENCHMARKS.md, "The driver's floor").

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/prismq/queue/core"
)

// openFloor opens path with the engine's default pragmas (overrides
// replace some) as a pool of one raw connection.
func openFloor(path string, overrides map[string]string) (*sql.DB, error) {
	pragmas := map[string]string{}
	for k, v := range core.DefaultPragmas {
		pragmas[k] = v
	}
	for k, v := range overrides {
		pragmas[k] = v
	}
	names := make([]string, 0, len(pragmas))
	for k := range pragmas {
		names = append(names, k)
	}
	sort.Strings(names)
	v := url.Values{}
	for _, k := range names {
		v.Add("_pragma", fmt.Sprintf("%s(%s)", k, pragmas[k]))
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+v.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// floorConn opens a file with the engine's schema and returns one raw
// connection to it with the engine's default pragmas.
func floorConn(b *testing.B) *sql.Conn {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "floor.db")
	q, err := core.Open(ctx, core.Options{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	db, err := openFloor(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	c, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}

const floorCols = `(type, priority, payload, status, max_attempts, run_after, created_at, updated_at)`

func floorInsertSQL(rows int) string {
	return `INSERT INTO tasks ` + floorCols + ` VALUES ` +
		strings.TrimSuffix(strings.Repeat(`(?, ?, ?, 'queued', ?, ?, ?, ?),`, rows), ",")
}

func floorArgs(args []any, rows int) []any {
	now := time.Now().UnixMilli()
	for r := 0; r < rows; r++ {
		args = append(args, "bench", int64(100), string(benchPayload), int64(5), now, now, now)
	}
	return args
}

func floorTx(b *testing.B, ctx context.Context, c *sql.Conn, body func() error) {
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		b.Fatal(err)
	}
	if err := body(); err != nil {
		b.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDriverFloor: see the top of this file.
func BenchmarkDriverFloor(b *testing.B) {
	ctx := context.Background()

	// One INSERT per transaction: the floor of EnqueueSingle.
	b.Run("enqueue_single", func(b *testing.B) {
		c := floorConn(b)
		st, err := c.PrepareContext(ctx, floorInsertSQL(1))
		if err != nil {
			b.Fatal(err)
		}
		args := make([]any, 0, 7)
		b.ResetTimer()
		cpu0 := cpuTime()
		for i := 0; i < b.N; i++ {
			floorTx(b, ctx, c, func() error {
				_, err := st.ExecContext(ctx, floorArgs(args[:0], 1)...)
				return err
			})
		}
		reportCPU(b, cpu0, b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
	})

	// 1,000 rows per transaction, 250 per multi-row INSERT: the floor of
	// EnqueueBatch1000.
	b.Run("enqueue_batch1000", func(b *testing.B) {
		c := floorConn(b)
		const per = 250
		st, err := c.PrepareContext(ctx, floorInsertSQL(per))
		if err != nil {
			b.Fatal(err)
		}
		args := make([]any, 0, 7*per)
		b.ResetTimer()
		cpu0 := cpuTime()
		for i := 0; i < b.N; i++ {
			floorTx(b, ctx, c, func() error {
				for k := 0; k < 1000/per; k++ {
					if _, err := st.ExecContext(ctx, floorArgs(args[:0], per)...); err != nil {
						return err
					}
				}
				return nil
			})
		}
		reportCPU(b, cpu0, b.N*1000)
		b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "tasks/s")
	})

	// A FIFO claim of one task (pick it from the claim index, lease it, read
	// it) in one transaction and its completion in another, at depth 1,000:
	// the floor of ClaimComplete/depth=1000/fifo.
	b.Run("claim_complete", func(b *testing.B) {
		c := floorConn(b)
		fillFloor := func(n int) {
			st, err := c.PrepareContext(ctx, floorInsertSQL(100))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			floorTx(b, ctx, c, func() error {
				for k := 0; k < n/100; k++ {
					if _, err := st.ExecContext(ctx, floorArgs(nil, 100)...); err != nil {
						return err
					}
				}
				return nil
			})
		}
		fillFloor(1000)
		pick, err := c.PrepareContext(ctx, `SELECT id FROM tasks INDEXED BY tasks_queued_fifo
			WHERE status = 'queued' AND run_after <= ?1 AND requirements IS NULL ORDER BY id LIMIT 1`)
		if err != nil {
			b.Fatal(err)
		}
		lease, err := c.PrepareContext(ctx, `UPDATE tasks SET status = 'leased', attempts = attempts + 1,
			lease_token = lease_token + 1, lease_owner = ?2, lease_expires_at = ?3, claimed_at = ?4,
			started_at = ?4, updated_at = ?4 WHERE id = ?1`)
		if err != nil {
			b.Fatal(err)
		}
		read, err := c.PrepareContext(ctx, `SELECT type, payload, lease_token, attempts FROM tasks WHERE id = ?`)
		if err != nil {
			b.Fatal(err)
		}
		done, err := c.PrepareContext(ctx, `UPDATE tasks SET status = 'completed', finished_at = ?2,
			updated_at = ?2, lease_expires_at = NULL WHERE id = ?1 AND status = 'leased' AND lease_token = ?3`)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		cpu0 := cpuTime()
		for i := 0; i < b.N; i++ {
			if i > 0 && i%500 == 0 {
				b.StopTimer()
				f0 := cpuTime()
				fillFloor(500)
				cpu0 += cpuTime() - f0
				b.StartTimer()
			}
			var id, token, attempts int64
			var typ, payload string
			floorTx(b, ctx, c, func() error {
				now := time.Now().UnixMilli()
				if err := pick.QueryRowContext(ctx, now).Scan(&id); err != nil {
					return err
				}
				if _, err := lease.ExecContext(ctx, id, "bench", now+60_000, now); err != nil {
					return err
				}
				return read.QueryRowContext(ctx, id).Scan(&typ, &payload, &token, &attempts)
			})
			floorTx(b, ctx, c, func() error {
				_, err := done.ExecContext(ctx, id, time.Now().UnixMilli(), token)
				return err
			})
		}
		reportCPU(b, cpu0, b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
	})
}

// floorDrain is the child role of BenchmarkProcessesFloor: the drain of
// drainQueue with the least SQL. Each batch: BEGIN IMMEDIATE, pick up to 64
// ids from the FIFO claim index, lease them with one UPDATE ... RETURNING of
// what a handler needs, COMMIT; then BEGIN IMMEDIATE, one fenced UPDATE per
// task to complete it, COMMIT. A busy lock is retried with the engine's
// sleep schedule (busy_timeout 0 here, so SQLite's own busy handler, which
// sleeps in whole milliseconds, does not decide the result).
func floorDrain(path, id string) error {
	ctx := context.Background()
	db, err := openFloor(path, map[string]string{"busy_timeout": "0"})
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	pick, err := c.PrepareContext(ctx, `SELECT id FROM tasks INDEXED BY tasks_queued_fifo
		WHERE status = 'queued' AND run_after <= ?1 AND requirements IS NULL ORDER BY id LIMIT ?2`)
	if err != nil {
		return err
	}
	lease, err := c.PrepareContext(ctx, `UPDATE tasks SET status = 'leased', attempts = attempts + 1,
		lease_token = lease_token + 1, lease_owner = ?2, lease_expires_at = ?3, claimed_at = ?4,
		started_at = ?4, updated_at = ?4 WHERE id IN (SELECT value FROM json_each(?1))
		RETURNING id, type, payload, lease_token, attempts`)
	if err != nil {
		return err
	}
	done, err := c.PrepareContext(ctx, `UPDATE tasks SET status = 'completed', finished_at = ?2,
		updated_at = ?2, lease_expires_at = NULL WHERE id = ?1 AND status = 'leased' AND lease_token = ?3`)
	if err != nil {
		return err
	}
	var retries int64
	begin := func() error {
		sleep := 20 * time.Microsecond
		for {
			_, err := c.ExecContext(ctx, "BEGIN IMMEDIATE")
			var se *sqlite.Error
			if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY {
				return err
			}
			retries++
			time.Sleep(sleep/2 + time.Duration(rand.Int64N(int64(sleep))))
			sleep = min(2*sleep, time.Millisecond)
		}
	}
	if err := startBarrier(path, id); err != nil {
		return err
	}
	start := time.Now()
	total := 0
	type leased struct{ id, token int64 }
	batch := make([]leased, 0, procsClaimMax)
	ids := make([]byte, 0, 16*procsClaimMax)
	for {
		if err := begin(); err != nil {
			return fmt.Errorf("begin claim: %w", err)
		}
		now := time.Now().UnixMilli()
		rows, err := pick.QueryContext(ctx, now, procsClaimMax)
		if err != nil {
			return err
		}
		ids = append(ids[:0], '[')
		for rows.Next() {
			var tid int64
			if err := rows.Scan(&tid); err != nil {
				return err
			}
			if len(ids) > 1 {
				ids = append(ids, ',')
			}
			ids = strconv.AppendInt(ids, tid, 10)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		ids = append(ids, ']')
		batch = batch[:0]
		rows, err = lease.QueryContext(ctx, string(ids), id, now+60_000, now)
		if err != nil {
			return err
		}
		for rows.Next() {
			var l leased
			var typ, payload string
			var attempts int64
			if err := rows.Scan(&l.id, &typ, &payload, &l.token, &attempts); err != nil {
				return err
			}
			batch = append(batch, l)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
			return fmt.Errorf("commit claim: %w", err)
		}
		if len(batch) == 0 {
			break
		}
		if err := begin(); err != nil {
			return fmt.Errorf("begin complete: %w", err)
		}
		now = time.Now().UnixMilli()
		for _, l := range batch {
			r, err := done.ExecContext(ctx, l.id, now, l.token)
			if err != nil {
				return err
			}
			if n, _ := r.RowsAffected(); n != 1 {
				return fmt.Errorf("complete %d: lease lost", l.id)
			}
		}
		if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
			return fmt.Errorf("commit complete: %w", err)
		}
		total += len(batch)
	}
	end := time.Now()
	_, err = fmt.Println(total, start.UnixNano(), end.UnixNano(), retries)
	return err
}

// checkFloorDrained fails the benchmark unless every task completed exactly
// once (floorDrain bypasses the engine's counters, so this counts rows).
func checkFloorDrained(b *testing.B, path string, drained int) {
	b.Helper()
	if drained != procsTasks {
		b.Fatalf("children completed %d tasks, want %d", drained, procsTasks)
	}
	db, err := openFloor(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM tasks WHERE status = 'completed' AND attempts = 1`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n != procsTasks {
		b.Fatalf("%d tasks completed once in the database, want %d", n, procsTasks)
	}
}
