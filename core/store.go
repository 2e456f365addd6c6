package core

import (
	"context"
	"encoding/json"
	"time"
)

// store is the only boundary through which the engine touches the database.
// Every SQL statement lives in its implementation (store_sqlite.go), so a
// PostgreSQL store can be added later without touching the engine.
//
// Write methods take a writeTx obtained from beginWrite; they run inside the
// writer's transaction and must not commit. Read methods use their own
// connections and see committed data only.
type store interface {
	// Transactions of the writer goroutine.
	beginWrite(ctx context.Context) (writeTx, error)
	savepoint(tx writeTx) error
	releaseSavepoint(tx writeTx) error
	rollbackSavepoint(tx writeTx) error
	commit(tx writeTx) error
	rollback(tx writeTx) error

	// Tasks.
	// insertTasks inserts in order; created[i] is false when ps[i]'s
	// idempotency key existed and tasks[i] is the existing task.
	insertTasks(tx writeTx, ps []insertParams) (tasks []Task, created []bool, err error)
	claim(tx writeTx, p claimParams) ([]Task, error)
	complete(tx writeTx, id, token int64, result json.RawMessage, now time.Time) error
	// completeMany completes leases without results; errs[i] is leases[i]'s outcome.
	completeMany(tx writeTx, leases []Lease, now time.Time) (errs []error, err error)
	fail(tx writeTx, p failParams) (Task, error)
	renew(tx writeTx, id, token int64, until, now time.Time, prog *Progress) (LeaseInfo, error)
	ackCancel(tx writeTx, id, token int64, now time.Time) error
	release(tx writeTx, id, token int64, now time.Time) error
	cancel(tx writeTx, id int64, now time.Time) (Task, error)
	retry(tx writeTx, id int64, now time.Time) (Task, error)
	sweep(tx writeTx, now time.Time, policy RetryPolicy, limit int) (SweepResult, error)
	appendLog(tx writeTx, e LogEntry) error
	// promote brings up to limit due tasks into the weighted race.
	promote(tx writeTx, now time.Time, limit int) (int64, error)

	// Workers.
	upsertWorker(tx writeTx, w WorkerInfo, lease time.Duration) error
	heartbeat(tx writeTx, workerID string, now, until time.Time) (HeartbeatResult, error)
	stopWorker(tx writeTx, workerID string, now time.Time) error
	setWorkerStrategy(tx writeTx, workerID string, s Strategy) error

	// Reads.
	getTask(ctx context.Context, id int64) (Task, error)
	listTasks(ctx context.Context, f ListFilter) (ListPage, error)
	stats(ctx context.Context) (Stats, error)
	logs(ctx context.Context, taskID int64, limit int) ([]LogEntry, error)
	workers(ctx context.Context) ([]WorkerInfo, error)
	hasWeightedWorkers(ctx context.Context) (bool, error)
	// nextDue is the earliest run_after after now among queued tasks (zero when none).
	nextDue(ctx context.Context, now time.Time) (time.Time, error)
	// changeCounter changes whenever another connection commits (PRAGMA data_version).
	changeCounter(ctx context.Context) (int64, error)
	// checkpoints counts the background WAL checkpoints run since open (0 for
	// a store without them).
	checkpoints() int64
	schemaVersion(ctx context.Context) (int, error)

	// Operations: metrics, maintenance, bulk changes, backup (store_sqlite_ops.go).
	opsStore

	close() error
}

// writeTx is an open write transaction of a store.
type writeTx interface{ writeTx() }

type insertParams struct {
	Type           string
	Priority       int64
	Payload        string
	Requirements   string // "" = none
	MaxAttempts    int64
	RunAfter       time.Time
	IdempotencyKey string
	RetryBase      time.Duration
	RetryCap       time.Duration
	Now            time.Time
}

type claimParams struct {
	Strategy   Strategy
	Now        time.Time
	LeaseUntil time.Time
	WorkerID   string
	TypesJSON  string // "" = any type; else a JSON array of names
	CapsJSON   string // "" = no capabilities (only tasks without requirements)
	Limit      int
}

type failParams struct {
	ID, Token int64
	Message   string
	Retryable bool
	Now       time.Time
	Policy    RetryPolicy
}

// opsStore is the part of the store behind metrics, maintenance, purge and
// requeue, backup and the doctor.
type opsStore interface {
	// Metrics reads.
	depthRows(ctx context.Context) ([]DepthRow, error)
	oldestEligible(ctx context.Context, now time.Time) (id int64, created, runAfter time.Time, err error)
	totalRows(ctx context.Context) ([]totalRow, error)
	finishedSample(ctx context.Context, from, to time.Time, limit int) ([]finishedRow, error)
	recentFailures(ctx context.Context, limit int) ([]FailureInfo, error)
	workerRows(ctx context.Context) ([]WorkerMetrics, error)
	expiredLeases(ctx context.Context, before time.Time) (n int64, oldest time.Time, err error)

	// Database facts and checks.
	facts(ctx context.Context) (dbFacts, error)
	pragmaValues(ctx context.Context, names []string) (map[string]string, error)
	integrityCheck(ctx context.Context, full bool, maxErrors int) ([]string, error)
	maintenanceLastRun(ctx context.Context) (time.Time, error)

	// Maintenance. checkpoint, vacuumFull and backupTo use their own
	// connection (they cannot run inside the writer's transaction).
	checkpoint(ctx context.Context, mode CheckpointMode) (CheckpointResult, error)
	vacuumFull(ctx context.Context) error
	incrementalVacuum(tx writeTx, pages int) (int64, error)
	optimize(tx writeTx) error
	// recountDepth rebuilds the depth counters from the tasks; it returns how many rows it corrected.
	recountDepth(tx writeTx) (int64, error)
	deleteFinishedBatch(tx writeTx, cutoff time.Time, statuses []Status, cursor int64, limit int) (tasks, logs, next int64, err error)
	pruneWorkers(tx writeTx, before time.Time) (int64, error)
	claimMaintenanceSlot(tx writeTx, now time.Time, interval time.Duration) (bool, error)
	backupTo(ctx context.Context, dst string, stepPages int, progress func(done, total int)) error

	// Bulk purge and requeue.
	countMatching(ctx context.Context, f TaskFilter, limit int64, sample int) (int64, []int64, error)
	matchingIDs(tx writeTx, f TaskFilter, cursor int64, limit int) ([]int64, error)
	deleteTasksByID(tx writeTx, ids []int64) (logs, tasks int64, err error)
	requeueByID(tx writeTx, ids []int64, now time.Time) (int64, error)
}

var _ store = (*sqliteStore)(nil)
