package core

// The depth and total counters of task_counters (migration 0004) are kept
// by the engine, not by triggers (dropped in migration 0005): each write
// method notes the status changes it makes in its transaction, and commit
// adds them up per (type, priority, kind, status) and applies them with one
// statement. A per-row trigger ran an UPSERT for every inserted, claimed and
// completed task, which cost a quarter of a single enqueue and two fifths of
// a claim+complete; one statement per transaction costs a few microseconds
// whatever the batch size.
//
// Since migration 0007 queued and leased tasks share one depth row
// ('open'), so a claim, a release or a requeue by the sweeper moves no
// counter and its transaction writes no counter page; the view task_depth
// tells queued and leased apart by counting the tasks_leased index.
//
// Savepoints: savepoint() remembers how many changes were noted and
// rollbackSavepoint() forgets those noted after it, so an operation the
// writer rolls back leaves no trace in the counters either.
//
// Writes made by other programs (the sqlite3 shell, an older library)
// bypass the counters; `maintain --recount` (recountDepth) rebuilds the
// depth rows from the tasks table.

import (
	"fmt"
	"strings"
	"sync"
)

// counterKey is one row of task_counters.
type counterKey struct {
	typ      string
	priority int64
	kind     string // "depth" or "total"
	status   string
}

type counterDelta struct {
	key counterKey
	n   int64
}

// transition notes that one task of (typ, priority) went from status from
// to status to ("" for none: inserted or deleted), with the totals that
// move with it: completed, failed and cancelled count every arrival, and
// "retried" counts a leased task going back to queued with its attempt
// spent (retried=true; a release gives the attempt back and is no retry).
func (t *sqliteTx) transition(typ string, priority int64, from, to Status, retried bool) {
	if from == to {
		return
	}
	if from == StatusLeased && to == StatusQueued && retried {
		t.deltas = append(t.deltas, counterDelta{counterKey{typ, priority, "total", "retried"}, 1})
	}
	if to == StatusCompleted || to == StatusFailed || to == StatusCancelled {
		t.deltas = append(t.deltas, counterDelta{counterKey{typ, priority, "total", string(to)}, 1})
	}
	df, dt := depthStatus(from), depthStatus(to)
	if df == dt {
		return // a claim, a release, a requeue: queued and leased share one depth row
	}
	if df != "" {
		t.deltas = append(t.deltas, counterDelta{counterKey{typ, priority, "depth", df}, -1})
	}
	if dt != "" {
		t.deltas = append(t.deltas, counterDelta{counterKey{typ, priority, "depth", dt}, 1})
	}
}

// depthOpen is the depth row of the tasks that are queued or leased
// (migration 0007); the view task_depth splits it again.
const depthOpen = "open"

// depthStatus is the depth row a task of status st counts in.
func depthStatus(st Status) string {
	if st == StatusQueued || st == StatusLeased {
		return depthOpen
	}
	return string(st)
}

// keepsCounters tells whether the engine keeps task_counters: from schema
// version 5 on (in version 4 triggers did).
func (s *sqliteStore) keepsCounters() bool { return s.schema >= 5 }

// counterSQL adds n to each of rows counter rows: one statement for all.
func counterSQL(rows int) string {
	if v, ok := counterSQLText.Load(rows); ok {
		return v.(string)
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO task_counters (type, priority, kind, status, n) VALUES `)
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?, ?, ?, ?, ?)`)
	}
	b.WriteString(` ON CONFLICT (type, priority, kind, status) DO UPDATE SET n = n + excluded.n`)
	q := b.String()
	counterSQLText.Store(rows, q)
	return q
}

var counterSQLText sync.Map // int -> string

// counterChunk bounds the rows of one counter statement (and so the
// number of distinct statements prepared).
const counterChunk = 8

// flushCounters applies the changes noted in tx, summed per counter row,
// with one statement for up to counterChunk rows (most transactions touch
// two or three, whatever their size).
func (s *sqliteStore) flushCounters(tx *sqliteTx) error {
	if len(tx.deltas) == 0 {
		return nil
	}
	deltas := tx.deltas
	tx.deltas = tx.deltas[:0]
	if !s.keepsCounters() {
		return nil
	}
	sums := make(map[counterKey]int64, 4)
	order := make([]counterKey, 0, 4)
	for _, d := range deltas {
		if _, ok := sums[d.key]; !ok {
			order = append(order, d.key)
		}
		sums[d.key] += d.n
	}
	args := make([]any, 0, 5*min(len(order), counterChunk))
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		_, err := s.exec(tx, counterSQL(len(args)/5), args...)
		args = args[:0]
		if err != nil {
			return fmt.Errorf("update task counters: %w", err)
		}
		return nil
	}
	for _, k := range order {
		if n := sums[k]; n != 0 {
			args = append(args, k.typ, k.priority, k.kind, k.status, n)
			if len(args) == 5*counterChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}
