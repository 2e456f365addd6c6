package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prismq/queue/core"
)

// Version is the library version reported by pq_version.
const Version = "0.1.0"

// Handles: Go objects live in maps keyed by integer ids; C holds only the ids.
var (
	handleMu   sync.RWMutex
	nextHandle atomic.Uint64
	queues     = map[uint64]*core.Queue{}
	workers    = map[uint64]workerEntry{}
)

type workerEntry struct {
	w     *core.Worker
	queue uint64
}

func newHandle() uint64 { return nextHandle.Add(1) }

func queueOf(h uint64) (*core.Queue, error) {
	handleMu.RLock()
	q, ok := queues[h]
	handleMu.RUnlock()
	if !ok {
		return nil, ErrUnknownHandle
	}
	return q, nil
}

func workerOf(h uint64) (*core.Worker, error) {
	handleMu.RLock()
	e, ok := workers[h]
	handleMu.RUnlock()
	if !ok {
		return nil, ErrUnknownHandle
	}
	return e.w, nil
}

var bg = context.Background()

// openIn is the options object of pq_open.
type openIn struct {
	Path               string         `json:"path"`
	AllowNetworkPath   bool           `json:"allow_network_path"`
	Pragmas            map[string]any `json:"pragmas"`
	MaxPayloadBytes    int            `json:"max_payload_bytes"`
	DefaultLeaseMs     int64          `json:"default_lease_ms"`
	SweepIntervalMs    int64          `json:"sweep_interval_ms"`
	DisableSweeper     bool           `json:"disable_sweeper"`
	WakePollIntervalMs int64          `json:"wake_poll_interval_ms"`
	Retry              *retryIn       `json:"retry"`
	SchemaVersion      int            `json:"schema_version"` // tests of upgrades: migrate only this far
}

type retryIn struct {
	BaseMs int64    `json:"base_ms"`
	CapMs  int64    `json:"cap_ms"`
	Jitter *float64 `json:"jitter"` // absent: the default 0.2
}

func millis(name string, v int64) (time.Duration, error) {
	if v < 0 {
		return 0, fmt.Errorf("%w: %s must be >= 0", core.ErrInvalidArgument, name)
	}
	return time.Duration(v) * time.Millisecond, nil
}

// Open implements pq_open.
func Open(optionsJSON string) (uint64, error) {
	var in openIn
	if err := decode("options", optionsJSON, &in, true); err != nil {
		return 0, err
	}
	o := core.Options{Path: in.Path, AllowNetworkPath: in.AllowNetworkPath, MaxPayloadBytes: in.MaxPayloadBytes,
		DisableSweeper: in.DisableSweeper}
	var err error
	if o.DefaultLease, err = millis("default_lease_ms", in.DefaultLeaseMs); err != nil {
		return 0, err
	}
	if o.SweepInterval, err = millis("sweep_interval_ms", in.SweepIntervalMs); err != nil {
		return 0, err
	}
	if o.WakePollInterval, err = millis("wake_poll_interval_ms", in.WakePollIntervalMs); err != nil {
		return 0, err
	}
	if p, err := in.Retry.policy(); err != nil {
		return 0, err
	} else if p != nil {
		o.Retry = *p
	}
	if len(in.Pragmas) > 0 {
		o.Pragmas = map[string]string{}
		for k, v := range in.Pragmas {
			switch v := v.(type) {
			case string:
				o.Pragmas[k] = v
			case json.Number:
				o.Pragmas[k] = v.String()
			case bool:
				o.Pragmas[k] = map[bool]string{true: "ON", false: "OFF"}[v]
			default:
				return 0, fmt.Errorf("%w: pragma %q must be a string, number or bool", core.ErrInvalidArgument, k)
			}
		}
	}
	var q *core.Queue
	if in.SchemaVersion > 0 {
		q, err = core.OpenAtVersion(bg, o, in.SchemaVersion)
	} else {
		q, err = core.Open(bg, o)
	}
	if err != nil {
		return 0, err
	}
	h := newHandle()
	handleMu.Lock()
	queues[h] = q
	handleMu.Unlock()
	return h, nil
}

// Close implements pq_close: the queue and every worker opened on it.
func Close(h uint64) error {
	handleMu.Lock()
	q, ok := queues[h]
	if ok {
		delete(queues, h)
		for wh, e := range workers {
			if e.queue == h {
				delete(workers, wh)
			}
		}
	}
	handleMu.Unlock()
	if !ok {
		return ErrUnknownHandle
	}
	return q.Close()
}

// QueueInfo implements pq_queue_info.
func QueueInfo(h uint64) (string, error) {
	q, err := queueOf(h)
	if err != nil {
		return "", err
	}
	v, err := q.SchemaVersion(bg)
	if err != nil {
		return "", err
	}
	o := q.Options()
	return encode(map[string]any{
		"path": q.Path(), "schema_version": v, "pragmas": o.Pragmas, "version": Version,
		"max_payload_bytes": o.MaxPayloadBytes, "default_lease_ms": o.DefaultLease.Milliseconds(),
		"busy_retries": q.BusyRetries(),
	})
}

// Enqueue implements pq_enqueue.
func Enqueue(h uint64, taskJSON string) (string, error) {
	q, err := queueOf(h)
	if err != nil {
		return "", err
	}
	var in enqueueIn
	if err := decode("task", taskJSON, &in, false); err != nil {
		return "", err
	}
	p, err := in.params()
	if err != nil {
		return "", err
	}
	r, err := q.Enqueue(bg, p)
	if err != nil {
		return "", err
	}
	return encode(enqueueOut{Task: toWire(r.Task), Created: r.Created})
}

// EnqueueMany implements pq_enqueue_many.
func EnqueueMany(h uint64, tasksJSON string) (string, error) {
	q, err := queueOf(h)
	if err != nil {
		return "", err
	}
	var in []enqueueIn
	if err := decode("tasks", tasksJSON, &in, false); err != nil {
		return "", err
	}
	ps := make([]core.EnqueueParams, len(in))
	for i, e := range in {
		if ps[i], err = e.params(); err != nil {
			return "", fmt.Errorf("task %d: %w", i, err)
		}
	}
	rs, err := q.EnqueueMany(bg, ps)
	if err != nil {
		return "", err
	}
	out := make([]enqueueOut, len(rs))
	for i, r := range rs {
		out[i] = enqueueOut{Task: toWire(r.Task), Created: r.Created}
	}
	return encode(out)
}

func taskOp(h uint64, fn func(*core.Queue) (core.Task, error)) (string, error) {
	q, err := queueOf(h)
	if err != nil {
		return "", err
	}
	t, err := fn(q)
	if err != nil {
		return "", err
	}
	return encode(toWire(t))
}

// Get implements pq_get.
func Get(h uint64, id int64) (string, error) {
	return taskOp(h, func(q *core.Queue) (core.Task, error) { return q.Get(bg, id) })
}

// Cancel implements pq_cancel.
func Cancel(h uint64, id int64) (string, error) {
	return taskOp(h, func(q *core.Queue) (core.Task, error) { return q.Cancel(bg, id) })
}

// Retry implements pq_retry.
func Retry(h uint64, id int64) (string, error) {
	return taskOp(h, func(q *core.Queue) (core.Task, error) { return q.Retry(bg, id) })
}

type listIn struct {
	Statuses   []core.Status `json:"statuses"`
	Types      []string      `json:"types"`
	Limit      int           `json:"limit"`
	AfterID    int64         `json:"after_id"`
	Descending bool          `json:"descending"`
}

// List implements pq_list.
func List(h uint64, filterJSON string) (string, error) {
	q, err := queueOf(h)
	if err != nil {
		return "", err
	}
	var in listIn
	if err := decode("filter", filterJSON, &in, true); err != nil {
		return "", err
	}
	page, err := q.List(bg, core.ListFilter{Statuses: in.Statuses, Types: in.Types, Limit: in.Limit,
		AfterID: in.AfterID, Descending: in.Descending})
	if err != nil {
		return "", err
	}
	var next *int64
	if page.NextAfterID != 0 {
		next = &page.NextAfterID
	}
	return encode(map[string]any{"tasks": toWireTasks(page.Tasks), "next_after_id": next})
}

// Stats implements pq_stats.
func Stats(h uint64) (string, error) {
	q, err := queueOf(h)
	if err != nil {
		return "", err
	}
	s, err := q.Stats(bg)
	if err != nil {
		return "", err
	}
	return encode(map[string]any{"total": s.Total, "by_status": s.ByStatus, "by_type": s.ByType,
		"oldest_queued_ms": ms(s.OldestQueued), "workers": s.Workers})
}

// Sweep implements pq_sweep.
func Sweep(h uint64) (string, error) {
	q, err := queueOf(h)
	if err != nil {
		return "", err
	}
	r, err := q.Sweep(bg)
	if err != nil {
		return "", err
	}
	return encode(map[string]int64{"requeued": r.Requeued, "failed": r.Failed, "cancelled": r.Cancelled})
}

type logIn struct {
	Level   string          `json:"level"`
	Message string          `json:"message"`
	Details json.RawMessage `json:"details"`
}

// Log implements pq_log.
func Log(h uint64, id int64, entryJSON string) error {
	q, err := queueOf(h)
	if err != nil {
		return err
	}
	var in logIn
	if err := decode("log entry", entryJSON, &in, false); err != nil {
		return err
	}
	if string(in.Details) == "null" {
		in.Details = nil
	}
	return q.AppendLog(bg, id, in.Level, in.Message, in.Details)
}

// Logs implements pq_logs.
func Logs(h uint64, id int64, limit int32) (string, error) {
	q, err := queueOf(h)
	if err != nil {
		return "", err
	}
	ls, err := q.Logs(bg, id, int(limit))
	if err != nil {
		return "", err
	}
	out := make([]wireLog, len(ls))
	for i, l := range ls {
		d := l.Details
		if d == nil {
			d = json.RawMessage("null")
		}
		out[i] = wireLog{ID: l.ID, TaskID: l.TaskID, AtMs: l.At.UnixMilli(), Level: l.Level, Message: l.Message, Details: d}
	}
	return encode(map[string]any{"logs": out})
}

// Workers implements pq_workers.
func Workers(h uint64) (string, error) {
	q, err := queueOf(h)
	if err != nil {
		return "", err
	}
	ws, err := q.Workers(bg)
	if err != nil {
		return "", err
	}
	out := make([]wireWorker, len(ws))
	for i, w := range ws {
		types := w.Types
		if types == nil {
			types = []string{}
		}
		out[i] = wireWorker{ID: w.ID, Host: w.Host, PID: w.PID, Strategy: w.Strategy, Capabilities: w.Capabilities,
			Types: types, StartedAtMs: w.StartedAt.UnixMilli(), HeartbeatMs: w.HeartbeatAt.UnixMilli(),
			StoppedAtMs: ms(w.StoppedAt), Running: w.Running}
	}
	return encode(map[string]any{"workers": out})
}

// --- workers ---------------------------------------------------------------------

type workerIn struct {
	WorkerID     string          `json:"worker_id"`
	Capabilities json.RawMessage `json:"capabilities"`
	Types        []string        `json:"types"`
	Strategy     string          `json:"strategy"`
	LeaseMs      int64           `json:"lease_ms"`
	Host         string          `json:"host"`
	PID          int64           `json:"pid"`
	Retry        *retryIn        `json:"retry"`
}

func (r *retryIn) policy() (*core.RetryPolicy, error) {
	if r == nil {
		return nil, nil
	}
	if r.BaseMs < 0 || r.CapMs < 0 {
		return nil, fmt.Errorf("%w: retry base_ms and cap_ms must be >= 0", core.ErrInvalidArgument)
	}
	p := core.RetryPolicy{Base: time.Duration(r.BaseMs) * time.Millisecond,
		Cap: time.Duration(r.CapMs) * time.Millisecond, Jitter: core.DefaultRetryPolicy.Jitter}
	if r.Jitter != nil {
		if *r.Jitter < 0 || *r.Jitter > 1 {
			return nil, fmt.Errorf("%w: retry jitter must be between 0 and 1", core.ErrInvalidArgument)
		}
		p.Jitter = *r.Jitter
	}
	return &p, nil
}

// WorkerOpen implements pq_worker_open.
func WorkerOpen(qh uint64, configJSON string) (uint64, error) {
	q, err := queueOf(qh)
	if err != nil {
		return 0, err
	}
	var in workerIn
	if err := decode("worker config", configJSON, &in, false); err != nil {
		return 0, err
	}
	strategy, err := core.ParseStrategy(in.Strategy)
	if err != nil {
		return 0, err
	}
	lease, err := millis("lease_ms", in.LeaseMs)
	if err != nil {
		return 0, err
	}
	retry, err := in.Retry.policy()
	if err != nil {
		return 0, err
	}
	w, err := q.RegisterWorker(bg, core.WorkerConfig{ID: in.WorkerID, Capabilities: in.Capabilities, Types: in.Types,
		Strategy: strategy, Lease: lease, Host: in.Host, PID: in.PID, Retry: retry})
	if err != nil {
		return 0, err
	}
	h := newHandle()
	handleMu.Lock()
	defer handleMu.Unlock()
	if _, ok := queues[qh]; !ok { // closed while registering
		_ = w.Close(bg)
		return 0, ErrUnknownHandle
	}
	workers[h] = workerEntry{w: w, queue: qh}
	return h, nil
}

// WorkerClose implements pq_worker_close.
func WorkerClose(h uint64) error {
	handleMu.Lock()
	e, ok := workers[h]
	delete(workers, h)
	handleMu.Unlock()
	if !ok {
		return ErrUnknownHandle
	}
	return e.w.Close(bg)
}

// WorkerSetStrategy implements pq_worker_set_strategy.
func WorkerSetStrategy(h uint64, strategy string) error {
	w, err := workerOf(h)
	if err != nil {
		return err
	}
	return w.SetStrategy(bg, core.Strategy(strategy))
}

// Claim implements pq_claim.
func Claim(h uint64, max int32, timeoutMs int64) (string, error) {
	w, err := workerOf(h)
	if err != nil {
		return "", err
	}
	if timeoutMs < 0 {
		timeoutMs = 0
	}
	ts, err := w.Claim(bg, int(max), time.Duration(timeoutMs)*time.Millisecond)
	if err != nil {
		return "", err
	}
	return encode(map[string]any{"tasks": toWireTasks(ts)})
}

// Heartbeat implements pq_heartbeat.
func Heartbeat(h uint64) (string, error) {
	w, err := workerOf(h)
	if err != nil {
		return "", err
	}
	r, err := w.Heartbeat(bg)
	if err != nil {
		return "", err
	}
	return encode(map[string]any{"renewed": r.Renewed, "cancel_requested": r.CancelRequested})
}

// Complete implements pq_complete; resultJSON "" means no result.
func Complete(h uint64, id, token int64, resultJSON string) error {
	w, err := workerOf(h)
	if err != nil {
		return err
	}
	if err := decodeAny("result", resultJSON); err != nil {
		return err
	}
	var res json.RawMessage
	if resultJSON != "" {
		res = json.RawMessage(resultJSON)
	}
	return w.Complete(bg, id, token, res)
}

// decodeAny checks that s is empty or one valid UTF-8 JSON value.
func decodeAny(what, s string) error {
	if s == "" {
		return nil
	}
	var v any
	return decode(what, s, &v, true)
}

// Fail implements pq_fail.
func Fail(h uint64, id, token int64, message string, retryable bool) (string, error) {
	w, err := workerOf(h)
	if err != nil {
		return "", err
	}
	if err := validText("error message", message); err != nil {
		return "", err
	}
	t, err := w.Fail(bg, id, token, message, retryable)
	if err != nil {
		return "", err
	}
	return encode(toWire(t))
}

func validText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", core.ErrInvalidArgument, what)
	}
	return nil
}

// Renew implements pq_renew.
func Renew(h uint64, id, token, leaseMs int64) (string, error) {
	w, err := workerOf(h)
	if err != nil {
		return "", err
	}
	if leaseMs < 0 {
		leaseMs = 0
	}
	info, err := w.Renew(bg, id, token, time.Duration(leaseMs)*time.Millisecond)
	if err != nil {
		return "", err
	}
	return encode(leaseOut{LeaseExpiresAtMs: info.ExpiresAt.UnixMilli(), CancelRequested: info.CancelRequested})
}

type progressIn struct {
	Percent *float64 `json:"percent"`
	Current *int64   `json:"current"`
	Total   *int64   `json:"total"`
	Message *string  `json:"message"`
}

// Progress implements pq_progress.
func Progress(h uint64, id, token int64, progressJSON string) (string, error) {
	w, err := workerOf(h)
	if err != nil {
		return "", err
	}
	var in progressIn
	if err := decode("progress", progressJSON, &in, false); err != nil {
		return "", err
	}
	info, err := w.Progress(bg, id, token, core.Progress{Percent: in.Percent, Current: in.Current, Total: in.Total,
		Message: in.Message})
	if err != nil {
		return "", err
	}
	return encode(leaseOut{LeaseExpiresAtMs: info.ExpiresAt.UnixMilli(), CancelRequested: info.CancelRequested})
}

// AckCancel implements pq_ack_cancel.
func AckCancel(h uint64, id, token int64) error {
	w, err := workerOf(h)
	if err != nil {
		return err
	}
	return w.AckCancel(bg, id, token)
}

// Release implements pq_release.
func Release(h uint64, id, token int64) error {
	w, err := workerOf(h)
	if err != nil {
		return err
	}
	return w.Release(bg, id, token)
}

type ackIn struct {
	ID        int64           `json:"id"`
	Token     int64           `json:"token"`
	Op        string          `json:"op"`
	Result    json.RawMessage `json:"result"`
	Error     string          `json:"error"`
	Retryable bool            `json:"retryable"`
}

type ackOut struct {
	ID     int64   `json:"id"`
	Status Status  `json:"status"`
	Error  *string `json:"error"`
}

// decodeAcks parses the acks array of pq_ack_many and pq_ack_and_claim.
func decodeAcks(acksJSON string) ([]ackIn, []core.Ack, error) {
	var in []ackIn
	if err := decode("acks", acksJSON, &in, false); err != nil {
		return nil, nil, err
	}
	acks := make([]core.Ack, len(in))
	for i, a := range in {
		res := a.Result
		if string(res) == "null" {
			res = nil
		}
		acks[i] = core.Ack{ID: a.ID, Token: a.Token, Op: core.AckOp(a.Op), Result: res, Error: a.Error, Retryable: a.Retryable}
	}
	return in, acks, nil
}

// ackResults is the "results" array: errs[i] is the outcome of in[i].
func ackResults(in []ackIn, errs []error) []ackOut {
	out := make([]ackOut, len(errs))
	for i, e := range errs {
		out[i] = ackOut{ID: in[i].ID, Status: CodeOf(e)}
		if e != nil {
			msg := e.Error()
			out[i].Error = &msg
		}
	}
	return out
}

// AckMany implements pq_ack_many.
func AckMany(h uint64, acksJSON string) (string, error) {
	w, err := workerOf(h)
	if err != nil {
		return "", err
	}
	in, acks, err := decodeAcks(acksJSON)
	if err != nil {
		return "", err
	}
	errs, err := w.AckMany(bg, acks)
	if err != nil {
		return "", err
	}
	return encode(map[string]any{"results": ackResults(in, errs)})
}

// AckAndClaim implements pq_ack_and_claim: the acks of AckMany and a
// claim of up to max tasks (without waiting) in one transaction.
func AckAndClaim(h uint64, acksJSON string, max int32) (string, error) {
	w, err := workerOf(h)
	if err != nil {
		return "", err
	}
	in, acks, err := decodeAcks(acksJSON)
	if err != nil {
		return "", err
	}
	errs, ts, err := w.AckAndClaim(bg, acks, int(max))
	if err != nil {
		return "", err
	}
	return encode(map[string]any{"results": ackResults(in, errs), "tasks": toWireTasks(ts)})
}

// DefaultPath implements pq_default_path.
func DefaultPath() (string, error) { return core.DefaultPath(), nil }
