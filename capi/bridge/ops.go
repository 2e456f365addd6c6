package bridge

// The operations half of the C ABI: metrics, maintenance, the doctor, bulk
// purge and requeue, and backup and restore as background operations with
// progress (operation handles, polled with pq_op_wait).

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prismq/queue/core"
)

func durMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// --- metrics ------------------------------------------------------------------------

type metricsIn struct {
	WindowMs       int64 `json:"window_ms"`
	SampleLimit    int   `json:"sample_limit"`
	RecentFailures *int  `json:"recent_failures"`
}

func (in metricsIn) options() (core.MetricsOptions, error) {
	if in.WindowMs < 0 || in.SampleLimit < 0 {
		return core.MetricsOptions{}, fmt.Errorf("%w: window_ms and sample_limit must be >= 0", core.ErrInvalidArgument)
	}
	o := core.MetricsOptions{Window: time.Duration(in.WindowMs) * time.Millisecond, SampleLimit: in.SampleLimit}
	if in.RecentFailures != nil {
		o.RecentFailures = *in.RecentFailures
		if o.RecentFailures == 0 {
			o.RecentFailures = -1 // explicit 0: none
		}
	}
	return o, nil
}

type wirePercentiles struct {
	Count int64   `json:"count"`
	SumMs float64 `json:"sum_ms"`
	P50Ms float64 `json:"p50_ms"`
	P95Ms float64 `json:"p95_ms"`
	P99Ms float64 `json:"p99_ms"`
}

func toWirePercentiles(p core.Percentiles) wirePercentiles {
	return wirePercentiles{Count: p.Count, SumMs: durMs(p.Sum), P50Ms: durMs(p.P50), P95Ms: durMs(p.P95), P99Ms: durMs(p.P99)}
}

type wireLatency struct {
	Wait wirePercentiles `json:"wait"`
	Run  wirePercentiles `json:"run"`
}

func toWireLatency(l core.LatencyStats) wireLatency {
	return wireLatency{Wait: toWirePercentiles(l.Wait), Run: toWirePercentiles(l.Run)}
}

type wireFinishes struct {
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
	Cancelled int64 `json:"cancelled"`
}

func toWireFinishes(e core.FinishCounts) wireFinishes {
	return wireFinishes{Completed: e.Completed, Failed: e.Failed, Cancelled: e.Cancelled}
}

type wireTotals struct {
	wireFinishes
	Retried int64 `json:"retried"`
}

func toWireTotals(t core.Totals) wireTotals {
	return wireTotals{wireFinishes: toWireFinishes(t.FinishCounts), Retried: t.Retried}
}

type wireThroughput struct {
	wireFinishes
	WindowMs    int64                   `json:"window_ms"`
	SpanMs      int64                   `json:"span_ms"`
	PerSecond   float64                 `json:"per_second"`
	FailureRate *float64                `json:"failure_rate"`
	ByType      map[string]wireFinishes `json:"by_type"`
}

type wireDepth struct {
	Status   core.Status `json:"status"`
	Type     string      `json:"type"`
	Priority int64       `json:"priority"`
	Count    int64       `json:"count"`
}

type wireTaskAge struct {
	TaskID       int64 `json:"task_id"`
	CreatedAtMs  int64 `json:"created_at_ms"`
	EligibleAtMs int64 `json:"eligible_at_ms"`
	AgeMs        int64 `json:"age_ms"`
	WaitingMs    int64 `json:"waiting_ms"`
}

type wireWorkerMetrics struct {
	wireWorker
	LeaseMs        int64            `json:"lease_ms"`
	HeartbeatAgeMs int64            `json:"heartbeat_age_ms"`
	State          core.WorkerState `json:"state"`
}

type wireFailure struct {
	TaskID       int64  `json:"task_id"`
	Type         string `json:"type"`
	Attempts     int64  `json:"attempts"`
	Error        string `json:"error"`
	FinishedAtMs *int64 `json:"finished_at_ms"`
}

type wireMetrics struct {
	AtMs           int64                            `json:"at_ms"`
	Total          int64                            `json:"total"`
	ByStatus       map[core.Status]int64            `json:"by_status"`
	ByType         map[string]map[core.Status]int64 `json:"by_type"`
	ByPriority     map[string]map[core.Status]int64 `json:"by_priority"`
	Depth          []wireDepth                      `json:"depth"`
	OldestEligible *wireTaskAge                     `json:"oldest_eligible"`
	Throughput     wireThroughput                   `json:"throughput"`
	Totals         wireTotals                       `json:"totals"`
	TotalsByType   map[string]wireTotals            `json:"totals_by_type"`
	Latency        map[string]wireLatency           `json:"latency"`
	LatencyAll     wireLatency                      `json:"latency_all"`
	Sampled        bool                             `json:"sampled"`
	Workers        []wireWorkerMetrics              `json:"workers"`
	WorkersByState map[core.WorkerState]int64       `json:"workers_by_state"`
	ExpiredLeases  int64                            `json:"expired_leases"`
	DeadLetters    int64                            `json:"dead_letters"`
	RecentFailures []wireFailure                    `json:"recent_failures"`
	BusyRetries    int64                            `json:"busy_retries"`
	DurationMs     float64                          `json:"duration_ms"`
}

func toWireMetrics(m core.Metrics) wireMetrics {
	w := wireMetrics{
		AtMs: m.At.UnixMilli(), Total: m.Total, ByStatus: m.ByStatus, ByType: m.ByType,
		ByPriority: map[string]map[core.Status]int64{}, Depth: make([]wireDepth, len(m.Depth)),
		Latency: map[string]wireLatency{}, LatencyAll: toWireLatency(m.LatencyAll), Sampled: m.Sampled,
		Workers: make([]wireWorkerMetrics, len(m.Workers)), WorkersByState: m.WorkersByState,
		ExpiredLeases: m.ExpiredLeases, DeadLetters: m.DeadLetters, RecentFailures: make([]wireFailure, len(m.RecentFailures)),
		BusyRetries: m.BusyRetries, DurationMs: durMs(m.Duration),
	}
	for p, c := range m.ByPriority {
		w.ByPriority[strconv.FormatInt(p, 10)] = c
	}
	for i, d := range m.Depth {
		w.Depth[i] = wireDepth{Status: d.Status, Type: d.Type, Priority: d.Priority, Count: d.Count}
	}
	if o := m.OldestEligible; o != nil {
		w.OldestEligible = &wireTaskAge{TaskID: o.TaskID, CreatedAtMs: o.CreatedAt.UnixMilli(),
			EligibleAtMs: o.EligibleAt.UnixMilli(), AgeMs: o.Age.Milliseconds(), WaitingMs: o.Waiting.Milliseconds()}
	}
	t := m.Throughput
	w.Throughput = wireThroughput{wireFinishes: toWireFinishes(t.FinishCounts), WindowMs: t.Window.Milliseconds(),
		SpanMs: t.Span.Milliseconds(), PerSecond: t.PerSecond, FailureRate: t.FailureRate, ByType: map[string]wireFinishes{}}
	for typ, e := range t.ByType {
		w.Throughput.ByType[typ] = toWireFinishes(e)
	}
	w.Totals, w.TotalsByType = toWireTotals(m.Totals), map[string]wireTotals{}
	for typ, e := range m.TotalsByType {
		w.TotalsByType[typ] = toWireTotals(e)
	}
	for typ, l := range m.Latency {
		w.Latency[typ] = toWireLatency(l)
	}
	for i, wk := range m.Workers {
		w.Workers[i] = wireWorkerMetrics{
			wireWorker: wireWorker{ID: wk.ID, Host: wk.Host, PID: wk.PID, Strategy: wk.Strategy,
				Capabilities: wk.Capabilities, Types: wk.Types, StartedAtMs: wk.StartedAt.UnixMilli(),
				HeartbeatMs: wk.HeartbeatAt.UnixMilli(), StoppedAtMs: ms(wk.StoppedAt), Running: wk.Running},
			LeaseMs: wk.Lease.Milliseconds(), HeartbeatAgeMs: wk.HeartbeatAge.Milliseconds(), State: wk.State,
		}
	}
	for i, f := range m.RecentFailures {
		w.RecentFailures[i] = wireFailure{TaskID: f.TaskID, Type: f.Type, Attempts: f.Attempts, Error: f.Error,
			FinishedAtMs: ms(f.FinishedAt)}
	}
	return w
}

func metricsOf(h uint64, optionsJSON string) (core.Metrics, error) {
	q, err := queueOf(h)
	if err != nil {
		return core.Metrics{}, err
	}
	var in metricsIn
	if err := decode("metrics options", optionsJSON, &in, true); err != nil {
		return core.Metrics{}, err
	}
	o, err := in.options()
	if err != nil {
		return core.Metrics{}, err
	}
	return q.Metrics(bg, o)
}

// Metrics implements pq_metrics.
func Metrics(h uint64, optionsJSON string) (string, error) {
	m, err := metricsOf(h, optionsJSON)
	if err != nil {
		return "", err
	}
	return encode(toWireMetrics(m))
}

// MetricsText implements pq_metrics_text.
func MetricsText(h uint64, optionsJSON string) (string, error) {
	m, err := metricsOf(h, optionsJSON)
	if err != nil {
		return "", err
	}
	return m.PrometheusText(), nil
}

// --- maintenance ------------------------------------------------------------------------

type maintainIn struct {
	RetentionMs       *int64  `json:"retention_ms"`
	PurgeFailed       *bool   `json:"purge_failed"`
	PruneWorkersMs    *int64  `json:"prune_workers_ms"`
	IncrementalVacuum *bool   `json:"incremental_vacuum"`
	VacuumFull        *bool   `json:"vacuum_full"`
	Optimize          *bool   `json:"optimize"`
	Recount           *bool   `json:"recount"`
	Checkpoint        *string `json:"checkpoint"`
	Integrity         *string `json:"integrity"`
	IntervalMs        *int64  `json:"interval_ms"` // pq_maintenance_schedule only
}

// options starts from core.DefaultMaintenanceOptions and applies the given keys.
func (in maintainIn) options() (core.MaintenanceOptions, error) {
	o := core.DefaultMaintenanceOptions()
	var err error
	if in.RetentionMs != nil {
		if o.Retention, err = millis("retention_ms", *in.RetentionMs); err != nil {
			return o, err
		}
	}
	if in.PruneWorkersMs != nil {
		if o.PruneWorkers, err = millis("prune_workers_ms", *in.PruneWorkersMs); err != nil {
			return o, err
		}
	}
	for _, b := range []struct {
		in  *bool
		out *bool
	}{{in.PurgeFailed, &o.PurgeFailed}, {in.IncrementalVacuum, &o.IncrementalVacuum},
		{in.VacuumFull, &o.VacuumFull}, {in.Optimize, &o.Optimize}, {in.Recount, &o.Recount}} {
		if b.in != nil {
			*b.out = *b.in
		}
	}
	if in.Checkpoint != nil {
		if o.Checkpoint, err = core.ParseCheckpointMode(*in.Checkpoint); err != nil {
			return o, err
		}
	}
	if in.Integrity != nil {
		if o.Integrity, err = core.ParseIntegrityMode(*in.Integrity); err != nil {
			return o, err
		}
	}
	return o, nil
}

type wireSizes struct {
	DBBytes  int64 `json:"db_bytes"`
	WALBytes int64 `json:"wal_bytes"`
}

type wireMaintenance struct {
	StartedAtMs   int64           `json:"started_at_ms"`
	DurationMs    float64         `json:"duration_ms"`
	Retention     *wireRetention  `json:"retention"`
	WorkersPruned int64           `json:"workers_pruned"`
	Vacuum        *wireVacuum     `json:"vacuum"`
	Optimized     bool            `json:"optimized"`
	Recounted     *int64          `json:"recounted"`
	Checkpoint    *wireCheckpoint `json:"checkpoint"`
	Integrity     *wireIntegrity  `json:"integrity"`
	Before        wireSizes       `json:"before"`
	After         wireSizes       `json:"after"`
}

type wireRetention struct {
	CutoffMs     int64         `json:"cutoff_ms"`
	Statuses     []core.Status `json:"statuses"`
	TasksDeleted int64         `json:"tasks_deleted"`
	LogsDeleted  int64         `json:"logs_deleted"`
}

type wireVacuum struct {
	Full            bool   `json:"full"`
	FreePagesBefore int64  `json:"free_pages_before"`
	PagesFreed      int64  `json:"pages_freed"`
	AutoVacuum      string `json:"auto_vacuum"`
}

type wireCheckpoint struct {
	Mode         core.CheckpointMode `json:"mode"`
	Busy         bool                `json:"busy"`
	WALFrames    int64               `json:"wal_frames"`
	Checkpointed int64               `json:"checkpointed"`
}

type wireIntegrity struct {
	Mode     core.IntegrityMode `json:"mode"`
	OK       bool               `json:"ok"`
	Messages []string           `json:"messages"`
}

func toWireMaintenance(r core.MaintenanceReport) wireMaintenance {
	w := wireMaintenance{StartedAtMs: r.StartedAt.UnixMilli(), DurationMs: durMs(r.Duration),
		WorkersPruned: r.WorkersPruned, Optimized: r.Optimized, Recounted: r.Recounted,
		Before: wireSizes{DBBytes: r.Before.DB, WALBytes: r.Before.WAL},
		After:  wireSizes{DBBytes: r.After.DB, WALBytes: r.After.WAL}}
	if x := r.Retention; x != nil {
		w.Retention = &wireRetention{CutoffMs: x.Cutoff.UnixMilli(), Statuses: x.Statuses,
			TasksDeleted: x.TasksDeleted, LogsDeleted: x.LogsDeleted}
	}
	if x := r.Vacuum; x != nil {
		w.Vacuum = &wireVacuum{Full: x.Full, FreePagesBefore: x.FreePagesBefore, PagesFreed: x.PagesFreed,
			AutoVacuum: x.AutoVacuum}
	}
	if x := r.Checkpoint; x != nil {
		w.Checkpoint = &wireCheckpoint{Mode: x.Mode, Busy: x.Busy, WALFrames: x.WALFrames, Checkpointed: x.Checkpointed}
	}
	if x := r.Integrity; x != nil {
		msgs := x.Messages
		if msgs == nil {
			msgs = []string{}
		}
		w.Integrity = &wireIntegrity{Mode: x.Mode, OK: x.OK, Messages: msgs}
	}
	return w
}

// Maintain implements pq_maintain.
func Maintain(h uint64, optionsJSON string) (string, error) {
	q, err := queueOf(h)
	if err != nil {
		return "", err
	}
	var in maintainIn
	if err := decode("maintenance options", optionsJSON, &in, true); err != nil {
		return "", err
	}
	if in.IntervalMs != nil {
		return "", fmt.Errorf("%w: interval_ms belongs to pq_maintenance_schedule", core.ErrInvalidArgument)
	}
	o, err := in.options()
	if err != nil {
		return "", err
	}
	r, err := q.Maintain(bg, o)
	if err != nil {
		return "", err
	}
	return encode(toWireMaintenance(r))
}

// ScheduleMaintenance implements pq_maintenance_schedule.
func ScheduleMaintenance(h uint64, optionsJSON string) error {
	q, err := queueOf(h)
	if err != nil {
		return err
	}
	var in maintainIn
	if err := decode("maintenance schedule", optionsJSON, &in, false); err != nil {
		return err
	}
	if in.IntervalMs == nil {
		return fmt.Errorf("%w: interval_ms is required (0 stops the schedule)", core.ErrInvalidArgument)
	}
	interval, err := millis("interval_ms", *in.IntervalMs)
	if err != nil {
		return err
	}
	o, err := in.options()
	if err != nil {
		return err
	}
	return q.ScheduleMaintenance(interval, o)
}

// --- doctor ----------------------------------------------------------------------------------

type doctorIn struct {
	WALWarnBytes int64  `json:"wal_warn_bytes"`
	MinFreeBytes int64  `json:"min_free_bytes"`
	LeaseGraceMs int64  `json:"lease_grace_ms"`
	Integrity    string `json:"integrity"`
}

type wireFinding struct {
	Check    string        `json:"check"`
	Severity core.Severity `json:"severity"`
	Message  string        `json:"message"`
	Advice   string        `json:"advice"`
}

// Doctor implements pq_doctor.
func Doctor(h uint64, optionsJSON string) (string, error) {
	q, err := queueOf(h)
	if err != nil {
		return "", err
	}
	var in doctorIn
	if err := decode("doctor options", optionsJSON, &in, true); err != nil {
		return "", err
	}
	if in.WALWarnBytes < 0 || in.MinFreeBytes < 0 || in.LeaseGraceMs < 0 {
		return "", fmt.Errorf("%w: doctor thresholds must be >= 0", core.ErrInvalidArgument)
	}
	r, err := q.Doctor(bg, core.DoctorOptions{WALWarnBytes: in.WALWarnBytes, MinFreeBytes: in.MinFreeBytes,
		LeaseGrace: time.Duration(in.LeaseGraceMs) * time.Millisecond, Integrity: core.IntegrityMode(in.Integrity)})
	if err != nil {
		return "", err
	}
	fs := make([]wireFinding, len(r.Findings))
	for i, f := range r.Findings {
		fs[i] = wireFinding{Check: f.Check, Severity: f.Severity, Message: f.Message, Advice: f.Advice}
	}
	return encode(map[string]any{"path": r.Path, "schema_version": r.SchemaVersion, "ok": r.OK, "findings": fs})
}

// --- purge and requeue -----------------------------------------------------------------------

type filterIn struct {
	Statuses         []core.Status `json:"statuses"`
	Types            []string      `json:"types"`
	CreatedBeforeMs  *int64        `json:"created_before_ms"`
	FinishedBeforeMs *int64        `json:"finished_before_ms"`
	ErrorContains    string        `json:"error_contains"`
	Limit            int64         `json:"limit"`
	DryRun           bool          `json:"dry_run"`
}

func (in filterIn) filter() core.TaskFilter {
	f := core.TaskFilter{Statuses: in.Statuses, Types: in.Types, ErrorContains: in.ErrorContains,
		Limit: in.Limit, DryRun: in.DryRun}
	if in.CreatedBeforeMs != nil {
		f.CreatedBefore = time.UnixMilli(*in.CreatedBeforeMs)
	}
	if in.FinishedBeforeMs != nil {
		f.FinishedBefore = time.UnixMilli(*in.FinishedBeforeMs)
	}
	return f
}

func bulk(h uint64, filterJSON string, fn func(*core.Queue, core.TaskFilter) (core.BulkResult, error)) (string, error) {
	q, err := queueOf(h)
	if err != nil {
		return "", err
	}
	var in filterIn
	if err := decode("filter", filterJSON, &in, true); err != nil {
		return "", err
	}
	r, err := fn(q, in.filter())
	if err != nil {
		return "", err
	}
	sample := r.SampleIDs
	if sample == nil {
		sample = []int64{}
	}
	return encode(map[string]any{"dry_run": r.DryRun, "matched": r.Matched, "affected": r.Affected, "sample_ids": sample})
}

// Purge implements pq_purge.
func Purge(h uint64, filterJSON string) (string, error) {
	return bulk(h, filterJSON, func(q *core.Queue, f core.TaskFilter) (core.BulkResult, error) { return q.Purge(bg, f) })
}

// Requeue implements pq_requeue.
func Requeue(h uint64, filterJSON string) (string, error) {
	return bulk(h, filterJSON, func(q *core.Queue, f core.TaskFilter) (core.BulkResult, error) { return q.Requeue(bg, f) })
}

// --- operations: backup and restore in the background ----------------------------------------

// operation is a backup or restore running in its own goroutine.
type operation struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	prog   core.BackupProgress
	result *core.BackupResult
	err    error
}

var (
	opMu sync.Mutex
	ops  = map[uint64]*operation{}
)

func startOp(run func(ctx context.Context, progress func(core.BackupProgress)) (core.BackupResult, error)) uint64 {
	ctx, cancel := context.WithCancel(bg)
	op := &operation{cancel: cancel, done: make(chan struct{})}
	h := newHandle()
	opMu.Lock()
	ops[h] = op
	opMu.Unlock()
	go func() {
		defer close(op.done)
		defer cancel()
		var r core.BackupResult
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("internal error (please report): %v", p)
				}
			}()
			r, err = run(ctx, func(p core.BackupProgress) {
				op.mu.Lock()
				op.prog = p
				op.mu.Unlock()
			})
		}()
		op.mu.Lock()
		if err == nil {
			op.result = &r
		}
		op.err = err
		op.mu.Unlock()
	}()
	return h
}

func opOf(h uint64) (*operation, error) {
	opMu.Lock()
	defer opMu.Unlock()
	op, ok := ops[h]
	if !ok {
		return nil, ErrUnknownHandle
	}
	return op, nil
}

type backupIn struct {
	Path       string `json:"path"`
	Overwrite  bool   `json:"overwrite"`
	StepPages  int    `json:"step_pages"`
	QuickCheck bool   `json:"quick_check"`
}

// BackupStart implements pq_backup.
func BackupStart(h uint64, optionsJSON string) (uint64, error) {
	q, err := queueOf(h)
	if err != nil {
		return 0, err
	}
	var in backupIn
	if err := decode("backup options", optionsJSON, &in, false); err != nil {
		return 0, err
	}
	if in.Path == "" {
		return 0, fmt.Errorf("%w: path is required", core.ErrInvalidArgument)
	}
	if in.StepPages < 0 {
		return 0, fmt.Errorf("%w: step_pages must be >= 0", core.ErrInvalidArgument)
	}
	return startOp(func(ctx context.Context, progress func(core.BackupProgress)) (core.BackupResult, error) {
		return q.Backup(ctx, in.Path, core.BackupOptions{Overwrite: in.Overwrite, StepPages: in.StepPages,
			QuickCheck: in.QuickCheck, Progress: progress})
	}), nil
}

type restoreIn struct {
	Backup           string `json:"backup"`
	Path             string `json:"path"`
	AllowNetworkPath bool   `json:"allow_network_path"`
	StepPages        int    `json:"step_pages"`
}

// RestoreStart implements pq_restore.
func RestoreStart(optionsJSON string) (uint64, error) {
	var in restoreIn
	if err := decode("restore options", optionsJSON, &in, false); err != nil {
		return 0, err
	}
	if in.Backup == "" {
		return 0, fmt.Errorf("%w: backup is required", core.ErrInvalidArgument)
	}
	if in.StepPages < 0 {
		return 0, fmt.Errorf("%w: step_pages must be >= 0", core.ErrInvalidArgument)
	}
	target := in.Path
	if target == "" {
		target = core.DefaultPath()
	}
	return startOp(func(ctx context.Context, progress func(core.BackupProgress)) (core.BackupResult, error) {
		return core.Restore(ctx, in.Backup, target, core.RestoreOptions{AllowNetworkPath: in.AllowNetworkPath,
			StepPages: in.StepPages, Progress: progress})
	}), nil
}

type wireBackupResult struct {
	Path              string   `json:"path"`
	Bytes             int64    `json:"bytes"`
	Pages             int      `json:"pages"`
	SchemaVersion     int      `json:"schema_version"`
	Tasks             int64    `json:"tasks"`
	Integrity         []string `json:"integrity"`
	StaleFilesRemoved []string `json:"stale_files_removed"`
	DurationMs        float64  `json:"duration_ms"`
}

// OpWait implements pq_op_wait: it waits up to timeoutMs for the operation
// and reports its progress; a finished operation that failed returns its error.
func OpWait(h uint64, timeoutMs int64) (string, error) {
	op, err := opOf(h)
	if err != nil {
		return "", err
	}
	if timeoutMs > 0 {
		t := time.NewTimer(time.Duration(timeoutMs) * time.Millisecond)
		select {
		case <-op.done:
		case <-t.C:
		}
		t.Stop()
	}
	done := false
	select {
	case <-op.done:
		done = true
	default:
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	if done && op.err != nil {
		return "", op.err
	}
	out := map[string]any{"done": done, "phase": op.prog.Phase, "pages_done": op.prog.PagesDone,
		"pages_total": op.prog.PagesTotal, "result": nil}
	if done && op.result != nil {
		r := op.result
		stale := r.StaleFilesRemoved
		if stale == nil {
			stale = []string{}
		}
		out["result"] = wireBackupResult{Path: r.Path, Bytes: r.Bytes, Pages: r.Pages, SchemaVersion: r.SchemaVersion,
			Tasks: r.Tasks, Integrity: r.Integrity, StaleFilesRemoved: stale, DurationMs: durMs(r.Duration)}
	}
	return encode(out)
}

// OpCancel implements pq_op_cancel.
func OpCancel(h uint64) error {
	op, err := opOf(h)
	if err != nil {
		return err
	}
	op.cancel()
	return nil
}

// OpClose implements pq_op_close: it cancels a running operation, waits for
// it to stop and releases the handle.
func OpClose(h uint64) error {
	opMu.Lock()
	op, ok := ops[h]
	delete(ops, h)
	opMu.Unlock()
	if !ok {
		return ErrUnknownHandle
	}
	op.cancel()
	<-op.done
	return nil
}
