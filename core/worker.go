package core

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// WorkerConfig describes a worker.
type WorkerConfig struct {
	// ID names the worker; required, unique among live workers. It is the
	// lease owner of the tasks it claims.
	ID string
	// Capabilities is a JSON object matched against task requirements.
	Capabilities json.RawMessage
	// Types restricts claims to these task types; empty means any type.
	Types []string
	// Strategy orders claims; default PRIORITY.
	Strategy Strategy
	// Lease is how long a claim holds a task without renewal; default Options.DefaultLease.
	Lease time.Duration
	// Host and PID are recorded in the registry; default this host and process.
	Host string
	PID  int64
	// Retry, when set, is the backoff of the failures this worker reports
	// (Fail, AckMany) and overrides the queue's; a task's own RetryBase and
	// RetryCap still win.
	Retry *RetryPolicy
}

// Worker claims and settles tasks for one registered worker id. Safe for
// concurrent use.
type Worker struct {
	q         *Queue
	id        string
	capsJSON  string // "" when the worker has no capabilities
	typesJSON string // "" when any type
	lease     time.Duration
	retry     RetryPolicy
	strategy  atomic.Value // Strategy
	closed    atomic.Bool
	closeOnce sync.Once
}

// RegisterWorker validates cfg, records the worker in the registry (or
// refreshes an existing entry with the same id) and returns it.
// Errors: ErrInvalidArgument, ErrClosed, ErrBusy.
func (q *Queue) RegisterWorker(ctx context.Context, cfg WorkerConfig) (*Worker, error) {
	if err := checkText("worker id", cfg.ID, maxTypeLen, true); err != nil {
		return nil, err
	}
	caps, err := q.checkJSONObject("capabilities", cfg.Capabilities)
	if err != nil {
		return nil, err
	}
	strategy := cfg.Strategy
	if strategy == "" {
		strategy = DefaultStrategy
	}
	if strategy, err = ParseStrategy(string(strategy)); err != nil {
		return nil, err
	}
	lease := cfg.Lease
	if lease == 0 {
		lease = q.opts.DefaultLease
	}
	if lease < 100*time.Millisecond || lease > 7*24*time.Hour {
		return nil, invalidf("lease must be between 100ms and 7 days, got %v", lease)
	}
	for _, t := range cfg.Types {
		if err := checkText("task type", t, maxTypeLen, true); err != nil {
			return nil, err
		}
	}
	w := &Worker{q: q, id: cfg.ID, lease: lease, retry: q.opts.Retry}
	if cfg.Retry != nil {
		r := *cfg.Retry
		if r.Jitter < 0 || r.Jitter > 1 || r.Base < 0 || r.Cap < 0 {
			return nil, invalidf("retry policy: base and cap must be >= 0 and jitter in [0, 1]")
		}
		w.retry = r.withDefaults()
	}
	if caps != "{}" {
		w.capsJSON = caps
	}
	if len(cfg.Types) > 0 {
		b, _ := json.Marshal(cfg.Types)
		w.typesJSON = string(b)
	}
	w.strategy.Store(strategy)
	host := cfg.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	pid := cfg.PID
	if pid == 0 {
		pid = int64(os.Getpid())
	}
	info := WorkerInfo{ID: cfg.ID, Host: host, PID: pid, Strategy: strategy,
		Capabilities: json.RawMessage(caps), Types: cfg.Types, StartedAt: q.now()}
	if err := q.write(ctx, false, func(tx writeTx) error { return q.st.upsertWorker(tx, info, lease) }); err != nil {
		return nil, fmt.Errorf("register worker: %w", err)
	}
	q.mu.Lock()
	q.workers[w] = struct{}{}
	q.mu.Unlock()
	return w, nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.id }

// Strategy is the worker's current strategy.
func (w *Worker) Strategy() Strategy { return w.strategy.Load().(Strategy) }

// Lease is the worker's lease duration.
func (w *Worker) Lease() time.Duration { return w.lease }

// SetStrategy changes the strategy of later claims and records it in the registry.
func (w *Worker) SetStrategy(ctx context.Context, s Strategy) error {
	if err := w.check(); err != nil {
		return err
	}
	s, err := ParseStrategy(string(s))
	if err != nil {
		return err
	}
	w.strategy.Store(s)
	return w.q.write(ctx, false, func(tx writeTx) error { return w.q.st.setWorkerStrategy(tx, w.id, s) })
}

// Close marks the worker stopped in the registry. Leases it still holds are
// left to expire (Release them first for a graceful stop). A second Close
// returns ErrClosed.
func (w *Worker) Close(ctx context.Context) error {
	err := ErrClosed
	w.closeOnce.Do(func() {
		w.closed.Store(true)
		w.q.mu.Lock()
		delete(w.q.workers, w)
		w.q.mu.Unlock()
		err = w.q.write(ctx, false, func(tx writeTx) error { return w.q.st.stopWorker(tx, w.id, w.q.now()) })
		if err == ErrClosed {
			err = nil
		}
	})
	return err
}

func (w *Worker) check() error {
	if w.closed.Load() || w.q.isClosed() {
		return ErrClosed
	}
	return nil
}

// MaxClaim is the most tasks one Claim returns.
const MaxClaim = 1000

// Claim leases up to max eligible tasks under the worker's strategy. With
// wait > 0 and nothing eligible it blocks until a task becomes eligible (at
// once for an enqueue in this process, within Options.WakePollInterval for
// one from another process, at run_after for a delayed task), the wait ends,
// ctx ends or the queue closes. It returns an empty slice when nothing came.
// Errors: ErrInvalidArgument, ErrClosed, ErrBusy.
func (w *Worker) Claim(ctx context.Context, max int, wait time.Duration) ([]Task, error) {
	if max < 1 || max > MaxClaim {
		return nil, invalidf("max tasks must be between 1 and %d, got %d", MaxClaim, max)
	}
	if wait < 0 {
		return nil, invalidf("wait must be >= 0, got %v", wait)
	}
	deadline := time.Now().Add(wait)
	registered := false
	defer func() {
		if registered {
			w.q.poll.removeWaiter()
		}
	}()
	for {
		if err := w.check(); err != nil {
			return nil, err
		}
		ch := w.q.sig.wait() // before the attempt, so a commit during it is not missed
		tasks, err := w.claimOnce(ctx, max)
		if err != nil || len(tasks) > 0 || wait == 0 {
			return tasks, err
		}
		if !registered {
			registered = true
			w.q.poll.addWaiter()
		}
		again, err := w.q.waitForWork(ctx, ch, deadline)
		if err != nil {
			return nil, err
		}
		if !again {
			return []Task{}, nil
		}
	}
}

// claimParams describes a claim of up to max tasks by this worker at now.
func (w *Worker) claimParams(now time.Time, max int) claimParams {
	return claimParams{
		Strategy: w.Strategy(), Now: now, LeaseUntil: now.Add(w.lease), WorkerID: w.id,
		TypesJSON: w.typesJSON, CapsJSON: w.capsJSON, Limit: max,
	}
}

func (w *Worker) claimOnce(ctx context.Context, max int) ([]Task, error) {
	var tasks []Task
	err := w.q.write(ctx, false, func(tx writeTx) (err error) {
		now := w.q.now()
		tasks, err = w.q.st.claim(tx, w.claimParams(now, max))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if tasks == nil {
		tasks = []Task{}
	}
	return tasks, nil
}

// Heartbeat records that the worker is alive and renews the lease of every
// task it holds. It returns the ids of its tasks with a cancel request.
func (w *Worker) Heartbeat(ctx context.Context) (HeartbeatResult, error) {
	if err := w.check(); err != nil {
		return HeartbeatResult{}, err
	}
	var res HeartbeatResult
	err := w.q.write(ctx, false, func(tx writeTx) (err error) {
		now := w.q.now()
		res, err = w.q.st.heartbeat(tx, w.id, now, now.Add(w.lease))
		return err
	})
	if res.CancelRequested == nil {
		res.CancelRequested = []int64{}
	}
	return res, err
}

// Complete settles a leased task as completed with an optional JSON result.
// Errors: ErrLeaseLost (stale token; nothing changes), ErrNotFound,
// ErrInvalidArgument / ErrPayloadTooLarge (result), ErrClosed.
func (w *Worker) Complete(ctx context.Context, id, token int64, result json.RawMessage) error {
	if err := w.check(); err != nil {
		return err
	}
	res, err := w.q.checkJSONValue("result", result)
	if err != nil {
		return err
	}
	return w.q.write(ctx, false, func(tx writeTx) error {
		return w.q.st.complete(tx, id, token, res, w.q.now())
	})
}

// Fail records a failure of a leased task. A retryable failure with
// attempts left goes back to queued after the backoff; otherwise the task
// ends failed (the dead-letter state) with message kept as its last error.
// Errors: ErrLeaseLost, ErrNotFound, ErrClosed.
func (w *Worker) Fail(ctx context.Context, id, token int64, message string, retryable bool) (Task, error) {
	if err := w.check(); err != nil {
		return Task{}, err
	}
	if err := checkText("error message", message, w.q.opts.MaxPayloadBytes, false); err != nil {
		return Task{}, err
	}
	var t Task
	err := w.q.write(ctx, retryable, func(tx writeTx) (err error) {
		t, err = w.q.st.fail(tx, failParams{ID: id, Token: token, Message: message, Retryable: retryable,
			Now: w.q.now(), Policy: w.retry})
		return err
	})
	return t, err
}

// Renew extends a lease by lease (<= 0: the worker's lease) from now.
// Errors: ErrLeaseLost, ErrNotFound, ErrClosed.
func (w *Worker) Renew(ctx context.Context, id, token int64, lease time.Duration) (LeaseInfo, error) {
	return w.renew(ctx, id, token, lease, nil)
}

// Progress records progress of a leased task and renews its lease.
// Errors: ErrInvalidArgument (percent outside 0..100), ErrLeaseLost, ErrNotFound, ErrClosed.
func (w *Worker) Progress(ctx context.Context, id, token int64, p Progress) (LeaseInfo, error) {
	if p.Percent != nil && (math.IsNaN(*p.Percent) || *p.Percent < 0 || *p.Percent > 100) {
		return LeaseInfo{}, invalidf("progress percent must be between 0 and 100")
	}
	if p.Message != nil {
		if err := checkText("progress message", *p.Message, 10_000, false); err != nil {
			return LeaseInfo{}, err
		}
	}
	return w.renew(ctx, id, token, 0, &p)
}

func (w *Worker) renew(ctx context.Context, id, token int64, lease time.Duration, p *Progress) (LeaseInfo, error) {
	if err := w.check(); err != nil {
		return LeaseInfo{}, err
	}
	if lease <= 0 {
		lease = w.lease
	}
	var info LeaseInfo
	err := w.q.write(ctx, false, func(tx writeTx) (err error) {
		now := w.q.now()
		info, err = w.q.st.renew(tx, id, token, now.Add(lease), now, p)
		return err
	})
	return info, err
}

// AckCancel ends a leased task as cancelled: the worker stopped it after a
// cancel request (or gave up on it by itself). Errors: ErrLeaseLost, ErrNotFound, ErrClosed.
func (w *Worker) AckCancel(ctx context.Context, id, token int64) error {
	if err := w.check(); err != nil {
		return err
	}
	return w.q.write(ctx, false, func(tx writeTx) error { return w.q.st.ackCancel(tx, id, token, w.q.now()) })
}

// Release hands a leased task back: queued and due at once, this attempt not
// counted (a pending cancel request makes it cancelled instead). For graceful
// shutdown. Errors: ErrLeaseLost, ErrNotFound, ErrClosed.
func (w *Worker) Release(ctx context.Context, id, token int64) error {
	if err := w.check(); err != nil {
		return err
	}
	return w.q.write(ctx, true, func(tx writeTx) error { return w.q.st.release(tx, id, token, w.q.now()) })
}

// AckOp is the kind of one Ack.
type AckOp string

// Ack operations for Worker.AckMany.
const (
	AckComplete AckOp = "complete"
	AckFail     AckOp = "fail"
	AckRelease  AckOp = "release"
	AckCancel   AckOp = "cancel"
)

// Lease names a leased task and the fencing token of its lease.
type Lease struct {
	ID, Token int64
}

// Ack settles one lease in Worker.AckMany.
type Ack struct {
	ID, Token int64
	Op        AckOp
	Result    json.RawMessage // complete
	Error     string          // fail
	Retryable bool            // fail
}

// AckMany settles many leases in one transaction; errs[i] is the outcome of
// acks[i] (nil on success), and one failing ack does not undo the others.
// The returned error is set only when nothing could be done (closed, busy).
func (w *Worker) AckMany(ctx context.Context, acks []Ack) ([]error, error) {
	errs, _, err := w.ackAndClaim(ctx, acks, 0)
	return errs, err
}

// AckAndClaim settles acks as AckMany does and claims up to max more tasks
// (without waiting) in the same transaction: a worker loop that drains the
// queue in batches commits once per batch instead of twice, which halves
// the write-lock hand-offs between processes. An empty claim means nothing
// was claimable at that moment; call Claim with a wait to block for work.
// errs[i] is the outcome of acks[i]; the returned error is set only when
// nothing was done (closed, busy, invalid max), and then no ack took effect.
func (w *Worker) AckAndClaim(ctx context.Context, acks []Ack, max int) ([]error, []Task, error) {
	if max < 1 || max > MaxClaim {
		return nil, nil, invalidf("max tasks must be between 1 and %d, got %d", MaxClaim, max)
	}
	return w.ackAndClaim(ctx, acks, max)
}

func (w *Worker) ackAndClaim(ctx context.Context, acks []Ack, max int) ([]error, []Task, error) {
	if err := w.check(); err != nil {
		return nil, nil, err
	}
	acks = append([]Ack(nil), acks...) // the results are normalised in place below
	invalid := make([]error, len(acks))
	for i, a := range acks {
		switch a.Op {
		case AckComplete:
			r, err := w.q.checkJSONValue("result", a.Result)
			acks[i].Result, invalid[i] = r, err
		case AckFail:
			invalid[i] = checkText("error message", a.Error, w.q.opts.MaxPayloadBytes, false)
		case AckRelease, AckCancel:
		default:
			invalid[i] = invalidf("unknown ack op %q (want complete, fail, release or cancel)", a.Op)
		}
	}
	errs := make([]error, len(acks))
	wake := false
	for _, a := range acks {
		wake = wake || a.Op == AckRelease || (a.Op == AckFail && a.Retryable)
	}
	var tasks []Task
	err := w.q.write(ctx, wake, func(tx writeTx) error {
		copy(errs, invalid) // the writer may run this twice (writer.go)
		now := w.q.now()
		// Completions without a result, the common case, settle in one statement.
		settled := make([]bool, len(acks))
		var plain []Lease
		var plainAt []int
		for i, a := range acks {
			if errs[i] == nil && a.Op == AckComplete && a.Result == nil {
				plain = append(plain, Lease{ID: a.ID, Token: a.Token})
				plainAt = append(plainAt, i)
			}
		}
		if len(plain) > 1 {
			res, err := w.q.st.completeMany(tx, plain, now)
			if err != nil {
				return err
			}
			for k, i := range plainAt {
				errs[i] = res[k]
				settled[i] = true
			}
		}
		for i, a := range acks {
			if errs[i] != nil || settled[i] {
				continue
			}
			// Each ack in its own savepoint would cost more than it saves: every
			// store call below either changes one row or fails without writing.
			switch a.Op {
			case AckComplete:
				errs[i] = w.q.st.complete(tx, a.ID, a.Token, a.Result, now)
			case AckFail:
				_, errs[i] = w.q.st.fail(tx, failParams{ID: a.ID, Token: a.Token, Message: a.Error,
					Retryable: a.Retryable, Now: now, Policy: w.retry})
			case AckRelease:
				errs[i] = w.q.st.release(tx, a.ID, a.Token, now)
			case AckCancel:
				errs[i] = w.q.st.ackCancel(tx, a.ID, a.Token, now)
			}
		}
		if max == 0 {
			return nil
		}
		var err error
		tasks, err = w.q.st.claim(tx, w.claimParams(now, max))
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if max > 0 && tasks == nil {
		tasks = []Task{}
	}
	return errs, tasks, nil
}
