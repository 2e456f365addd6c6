package core

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// CheckpointMode is a PRAGMA wal_checkpoint mode.
type CheckpointMode string

// Checkpoint modes. Passive never waits (it copies what it can); Full waits
// for writers, Restart also for readers, Truncate also truncates the -wal
// file to zero bytes. The waiting modes hold the write lock while they wait
// (up to busy_timeout), so run them when the queue is quiet.
const (
	CheckpointNone     CheckpointMode = "none"
	CheckpointPassive  CheckpointMode = "passive"
	CheckpointFull     CheckpointMode = "full"
	CheckpointRestart  CheckpointMode = "restart"
	CheckpointTruncate CheckpointMode = "truncate"
)

// ParseCheckpointMode accepts the mode names case-insensitively ("" is none).
func ParseCheckpointMode(s string) (CheckpointMode, error) {
	switch m := CheckpointMode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return CheckpointNone, nil
	case CheckpointNone, CheckpointPassive, CheckpointFull, CheckpointRestart, CheckpointTruncate:
		return m, nil
	}
	return "", invalidf("unknown checkpoint mode %q (want none, passive, full, restart or truncate)", s)
}

// IntegrityMode selects PRAGMA quick_check or integrity_check.
type IntegrityMode string

// Integrity check modes. Quick skips the index-content cross-check
// (O(N) instead of O(N log N)); Full is PRAGMA integrity_check.
const (
	IntegrityNone  IntegrityMode = "none"
	IntegrityQuick IntegrityMode = "quick"
	IntegrityFull  IntegrityMode = "full"
)

// ParseIntegrityMode accepts the mode names case-insensitively ("" is none).
func ParseIntegrityMode(s string) (IntegrityMode, error) {
	switch m := IntegrityMode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return IntegrityNone, nil
	case IntegrityNone, IntegrityQuick, IntegrityFull:
		return m, nil
	}
	return "", invalidf("unknown integrity check %q (want none, quick or full)", s)
}

// MaintenanceOptions select the steps of Queue.Maintain. The zero value does
// nothing; DefaultMaintenanceOptions gives the scheduled defaults.
type MaintenanceOptions struct {
	// Retention > 0 deletes completed and cancelled tasks (and their logs)
	// that finished longer ago than this.
	Retention time.Duration
	// PurgeFailed extends Retention to failed tasks (kept by default: they
	// are the dead letters someone may still want to retry).
	PurgeFailed bool
	// PruneWorkers > 0 deletes registry rows of workers stopped, or silent,
	// for longer than this that hold no lease.
	PruneWorkers time.Duration
	// IncrementalVacuum returns free pages to the file system (needs
	// auto_vacuum=INCREMENTAL: databases created by this library have it;
	// older files need one VacuumFull).
	IncrementalVacuum bool
	// VacuumFull rewrites the whole file (VACUUM) and switches it to
	// incremental auto-vacuum. It needs free disk as large as the database
	// and holds the write lock throughout: run it while the queue is quiet.
	VacuumFull bool
	// Optimize refreshes the query planner's statistics (PRAGMA optimize
	// with a bounded ANALYZE).
	Optimize bool
	// Recount rebuilds the depth counters behind Stats and Metrics from the
	// tasks table. The engine keeps them in step with its own writes; only
	// writes made by other programs (a SQLite shell, a hand-made script)
	// make them drift. One write transaction that reads every task: run it
	// while the queue is quiet. Totals (completed, failed, ... ever) are not
	// rebuilt: purged tasks are gone.
	Recount bool
	// Checkpoint runs a WAL checkpoint in this mode after the other steps.
	Checkpoint CheckpointMode
	// Integrity runs a quick or full integrity check last.
	Integrity IntegrityMode
}

// DefaultMaintenanceOptions is what the scheduled mode and `prismq-queue
// maintain` run: 30-day retention of completed and cancelled tasks (failed
// ones kept), registry rows of workers gone for 7 days pruned, incremental
// vacuum, optimize, and a passive checkpoint (it never blocks workers).
func DefaultMaintenanceOptions() MaintenanceOptions {
	return MaintenanceOptions{
		Retention: 30 * 24 * time.Hour, PruneWorkers: 7 * 24 * time.Hour,
		IncrementalVacuum: true, Optimize: true, Checkpoint: CheckpointPassive, Integrity: IntegrityNone,
	}
}

// MaintenanceReport is what Queue.Maintain did. Steps not run are nil.
type MaintenanceReport struct {
	StartedAt     time.Time
	Duration      time.Duration
	Retention     *RetentionResult
	WorkersPruned int64
	Vacuum        *VacuumResult
	Optimized     bool
	// Recounted is the number of depth counter rows Recount corrected (nil when not run).
	Recounted     *int64
	Checkpoint    *CheckpointResult
	Integrity     *IntegrityResult
	Before, After FileSizes
}

// RetentionResult counts what retention deleted.
type RetentionResult struct {
	Cutoff       time.Time
	Statuses     []Status
	TasksDeleted int64
	LogsDeleted  int64
}

// VacuumResult tells what a vacuum step freed.
type VacuumResult struct {
	Full            bool
	FreePagesBefore int64
	PagesFreed      int64
	// AutoVacuum is the file's auto_vacuum after the step: none, full or incremental.
	AutoVacuum string
}

// CheckpointResult is the outcome of PRAGMA wal_checkpoint.
type CheckpointResult struct {
	Mode CheckpointMode
	// Busy: the checkpoint could not finish (a reader or writer was in the way).
	Busy bool
	// WALFrames is the size of the WAL in frames; Checkpointed how many were copied into the database.
	WALFrames, Checkpointed int64
}

// IntegrityResult is the outcome of an integrity check.
type IntegrityResult struct {
	Mode     IntegrityMode
	OK       bool
	Messages []string // ["ok"] when OK
}

// FileSizes are the byte sizes of the database file and its -wal.
type FileSizes struct {
	DB, WAL int64
}

func (q *Queue) fileSizes() FileSizes {
	var f FileSizes
	if st, err := os.Stat(q.opts.Path); err == nil {
		f.DB = st.Size()
	}
	if st, err := os.Stat(q.opts.Path + "-wal"); err == nil {
		f.WAL = st.Size()
	}
	return f
}

// Batch sizes of the maintenance steps: each batch is one short write
// transaction, so workers keep committing between them.
const (
	retentionBatch = 2000
	vacuumBatch    = 2000 // pages
	bulkBatch      = 2000
)

var autoVacuumNames = map[int64]string{0: "none", 1: "full", 2: "incremental"}

// Maintain runs the selected maintenance steps in this order: retention,
// pruning of gone workers, vacuum, optimize, recount,
// checkpoint, integrity check. Deletions and the incremental vacuum run in
// short batches, so workers go on while it runs. Errors: ErrInvalidArgument,
// ErrClosed, ErrBusy, and ctx's error (what was done so far is reported).
func (q *Queue) Maintain(ctx context.Context, o MaintenanceOptions) (r MaintenanceReport, err error) {
	r.StartedAt = q.now()
	if q.isClosed() {
		return r, ErrClosed
	}
	if o.Retention < 0 || o.PruneWorkers < 0 {
		return r, invalidf("retention and prune-workers durations must be >= 0")
	}
	if o.Checkpoint, err = ParseCheckpointMode(string(o.Checkpoint)); err != nil {
		return r, err
	}
	if o.Integrity, err = ParseIntegrityMode(string(o.Integrity)); err != nil {
		return r, err
	}
	started := time.Now()
	r.Before = q.fileSizes()
	defer func() {
		r.After = q.fileSizes()
		r.Duration = time.Since(started)
	}()
	now := q.now()

	if o.Retention > 0 {
		res, err := q.retention(ctx, now.Add(-o.Retention), o.PurgeFailed)
		r.Retention = &res
		if err != nil {
			return r, fmt.Errorf("maintain: retention: %w", err)
		}
	}
	if o.PruneWorkers > 0 {
		err = q.write(ctx, false, func(tx writeTx) (err error) {
			r.WorkersPruned, err = q.st.pruneWorkers(tx, now.Add(-o.PruneWorkers))
			return err
		})
		if err != nil {
			return r, fmt.Errorf("maintain: prune workers: %w", err)
		}
	}

	if o.VacuumFull || o.IncrementalVacuum {
		res, err := q.vacuum(ctx, o.VacuumFull)
		r.Vacuum = &res
		if err != nil {
			return r, fmt.Errorf("maintain: vacuum: %w", err)
		}
	}
	if o.Optimize {
		if err := q.write(ctx, false, func(tx writeTx) error { return q.st.optimize(tx) }); err != nil {
			return r, fmt.Errorf("maintain: %w", err)
		}
		r.Optimized = true
	}
	if o.Recount {
		var n int64
		if err := q.write(ctx, false, func(tx writeTx) (err error) {
			n, err = q.st.recountDepth(tx)
			return err
		}); err != nil {
			return r, fmt.Errorf("maintain: recount: %w", err)
		}
		r.Recounted = &n
	}
	if o.Checkpoint != CheckpointNone {
		res, err := q.Checkpoint(ctx, o.Checkpoint)
		r.Checkpoint = &res
		if err != nil {
			return r, fmt.Errorf("maintain: %w", err)
		}
	}
	if o.Integrity != IntegrityNone {
		res, err := q.IntegrityCheck(ctx, o.Integrity)
		r.Integrity = &res
		if err != nil {
			return r, fmt.Errorf("maintain: %w", err)
		}
	}
	return r, nil
}

func (q *Queue) retention(ctx context.Context, cutoff time.Time, purgeFailed bool) (RetentionResult, error) {
	res := RetentionResult{Cutoff: cutoff, Statuses: []Status{StatusCompleted, StatusCancelled}}
	if purgeFailed {
		res.Statuses = append(res.Statuses, StatusFailed)
	}
	var cursor int64
	for {
		from := cursor // fn may run twice (see bulk): it reads from and assigns its outputs
		var tasks, logs int64
		err := q.write(ctx, false, func(tx writeTx) (err error) {
			tasks, logs, cursor, err = q.st.deleteFinishedBatch(tx, cutoff, res.Statuses, from, retentionBatch)
			return err
		})
		if err != nil {
			return res, err
		}
		res.TasksDeleted += tasks
		res.LogsDeleted += logs
		if tasks < retentionBatch {
			return res, nil
		}
	}
}

func (q *Queue) vacuum(ctx context.Context, full bool) (VacuumResult, error) {
	res := VacuumResult{Full: full}
	f, err := q.st.facts(ctx)
	if err != nil {
		return res, err
	}
	res.FreePagesBefore = f.FreelistCount
	res.AutoVacuum = autoVacuumNames[f.AutoVacuum]
	if full {
		if err := q.st.vacuumFull(ctx); err != nil {
			return res, err
		}
		if f, err = q.st.facts(ctx); err != nil {
			return res, err
		}
		res.PagesFreed = res.FreePagesBefore - f.FreelistCount
		res.AutoVacuum = autoVacuumNames[f.AutoVacuum]
		return res, nil
	}
	if f.AutoVacuum != 2 {
		return res, nil // nothing to do incrementally; Doctor says how to switch
	}
	for {
		var freed int64
		err := q.write(ctx, false, func(tx writeTx) (err error) {
			freed, err = q.st.incrementalVacuum(tx, vacuumBatch)
			return err
		})
		if err != nil {
			return res, err
		}
		res.PagesFreed += freed
		if freed < vacuumBatch {
			return res, nil
		}
	}
}

// Checkpoint runs a WAL checkpoint in the given mode (see CheckpointMode).
// Errors: ErrInvalidArgument, ErrClosed, ErrBusy.
func (q *Queue) Checkpoint(ctx context.Context, mode CheckpointMode) (CheckpointResult, error) {
	if q.isClosed() {
		return CheckpointResult{}, ErrClosed
	}
	mode, err := ParseCheckpointMode(string(mode))
	if err != nil {
		return CheckpointResult{}, err
	}
	if mode == CheckpointNone {
		return CheckpointResult{Mode: mode}, nil
	}
	return q.st.checkpoint(ctx, mode)
}

// IntegrityCheck runs PRAGMA quick_check (IntegrityQuick) or
// integrity_check (IntegrityFull) and reports up to 100 problems. It reads
// the whole file: seconds on a large database. Errors: ErrInvalidArgument, ErrClosed.
func (q *Queue) IntegrityCheck(ctx context.Context, mode IntegrityMode) (IntegrityResult, error) {
	if q.isClosed() {
		return IntegrityResult{}, ErrClosed
	}
	mode, err := ParseIntegrityMode(string(mode))
	if err != nil {
		return IntegrityResult{}, err
	}
	if mode == IntegrityNone {
		mode = IntegrityQuick
	}
	msgs, err := q.st.integrityCheck(ctx, mode == IntegrityFull, 100)
	if err != nil {
		return IntegrityResult{Mode: mode}, err
	}
	return IntegrityResult{Mode: mode, OK: len(msgs) == 1 && msgs[0] == "ok", Messages: msgs}, nil
}

// --- scheduled maintenance ----------------------------------------------------------

type maintSchedule struct {
	stop chan struct{}
	done chan struct{}
}

var (
	schedMu   sync.Mutex
	schedules = map[*Queue]*maintSchedule{}
)

// ScheduleMaintenance runs Maintain(o) in the background about every
// interval while the queue is open; interval 0 stops a schedule. Several
// processes may schedule it on one database: a row in ops_state records the
// last start, and a process runs a pass only when the last one (by anyone)
// started at least interval ago. The first pass is due at once when the
// database has never been maintained. Errors of a pass are retried at the
// next one. Errors: ErrInvalidArgument (interval under a minute), ErrClosed.
func (q *Queue) ScheduleMaintenance(interval time.Duration, o MaintenanceOptions) error {
	if q.isClosed() {
		return ErrClosed
	}
	if interval != 0 && interval < time.Minute {
		return invalidf("maintenance interval must be at least 1 minute, got %v", interval)
	}
	if _, err := ParseCheckpointMode(string(o.Checkpoint)); err != nil {
		return err
	}
	if _, err := ParseIntegrityMode(string(o.Integrity)); err != nil {
		return err
	}
	schedMu.Lock()
	old := schedules[q]
	delete(schedules, q)
	schedMu.Unlock()
	if old != nil {
		close(old.stop)
		<-old.done
	}
	if interval == 0 {
		return nil
	}
	s := &maintSchedule{stop: make(chan struct{}), done: make(chan struct{})}
	schedMu.Lock()
	schedules[q] = s
	schedMu.Unlock()
	go q.maintenanceLoop(s, interval, o)
	return nil
}

// MaintainIfDue runs Maintain(o) when no process has started a maintenance
// pass on this database in the last interval, recording the start so that
// the others skip theirs; ran reports whether it did. ScheduleMaintenance
// calls it periodically; it is also the building block for an external
// scheduler (cron, Task Scheduler). Errors: as Maintain.
func (q *Queue) MaintainIfDue(ctx context.Context, interval time.Duration, o MaintenanceOptions) (
	report MaintenanceReport, ran bool, err error) {
	if interval <= 0 {
		return report, false, invalidf("maintenance interval must be > 0, got %v", interval)
	}
	err = q.write(ctx, false, func(tx writeTx) (err error) {
		ran, err = q.st.claimMaintenanceSlot(tx, q.now(), interval)
		return err
	})
	if err != nil || !ran {
		return report, false, err
	}
	report, err = q.Maintain(ctx, o)
	return report, true, err
}

func (q *Queue) maintenanceLoop(s *maintSchedule, interval time.Duration, o MaintenanceOptions) {
	defer close(s.done)
	defer func() {
		schedMu.Lock()
		if schedules[q] == s {
			delete(schedules, q)
		}
		schedMu.Unlock()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-q.closed:
		case <-s.stop:
		}
		cancel()
	}()
	// Look often enough that some process runs a pass close to its due time.
	check := min(interval/4, time.Minute)
	timer := time.NewTimer(time.Second) // first look soon after start
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		_, _, _ = q.MaintainIfDue(ctx, interval, o) // a failed pass is retried at the next interval
		timer.Reset(check)
	}
}
