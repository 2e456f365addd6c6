package core

import (
	"context"
	"errors"
	"runtime"
	"sync"
)

// writer serializes the writes of one Queue onto the store's single write
// connection and commits the operations of concurrent callers together in
// one transaction (group commit). SQLite has one writer per file, so N
// concurrent callers cost one commit instead of N.
//
// There is no writer goroutine: the first caller to find the writer idle
// becomes the leader and runs batches of pending operations (its own first)
// on its own goroutine, so an uncontended call pays no thread hand-off.
// Callers that arrive meanwhile queue their operation and wait. When the
// leader's own operation is done it hands the lead to the oldest waiting
// caller, so no caller serves others for ever.
//
// Each operation of a batch runs inside the transaction; should one fail, the
// transaction is rolled back and the batch runs again with a savepoint around
// each operation, so that a failure undoes only its own operation.
type writer struct {
	st          store
	maxBatch    int
	afterCommit func(wake bool) // after each commit that made tasks claimable

	mu      sync.Mutex
	idle    *sync.Cond // signalled when leading becomes false
	pending []*writeOp
	last    int // size of the last batch
	leading bool
	closed  bool
}

type writeOp struct {
	fn func(tx writeTx) error
	// ins, when set, marks an enqueue: the fast path inserts the tasks of
	// all enqueues of a batch with one call (multi-row INSERTs) instead of
	// running their fns one by one; fn does the same for this op alone.
	ins *insertOp
	// ran: the batch already ran this op (merged inserts).
	ran bool
	// wake asks waiting claimers to look again after the commit (new or requeued tasks).
	wake bool
	err  error
	// done receives one signal when the op has run, and one before that if
	// the op's caller is promoted to leader (promote is then true).
	done     chan struct{}
	promote  bool
	finished bool
	// next is the op to signal after this one has woken up: finish wakes
	// the first op of a batch and each wakes the next, so that the leader
	// pays one wake-up per batch, not one per op.
	next *writeOp
}

func newWriter(st store, maxBatch int, afterCommit func(bool)) *writer {
	w := &writer{st: st, maxBatch: maxBatch, afterCommit: afterCommit}
	w.idle = sync.NewCond(&w.mu)
	return w
}

var opPool = sync.Pool{New: func() any { return &writeOp{done: make(chan struct{}, 1)} }}

// do runs fn in a write transaction and returns once it is committed (or
// failed). wake marks operations that make tasks claimable. A context that
// ends before the operation starts cancels it; once started it runs to the end.
func (w *writer) do(ctx context.Context, wake bool, fn func(tx writeTx) error) error {
	return w.doOp(ctx, wake, fn, nil)
}

// insertOp is an enqueue's tasks and, once run, what the insert returned.
type insertOp struct {
	ps      []insertParams
	tasks   []Task
	created []bool
}

// insert runs an enqueue of ps through the writer; concurrent enqueues of
// one batch share multi-row INSERT statements.
func (w *writer) insert(ctx context.Context, ps []insertParams) ([]Task, []bool, error) {
	ins := &insertOp{ps: ps}
	err := w.doOp(ctx, true, func(tx writeTx) (err error) {
		ins.tasks, ins.created, err = w.st.insertTasks(tx, ins.ps)
		return err
	}, ins)
	return ins.tasks, ins.created, err
}

func (w *writer) doOp(ctx context.Context, wake bool, fn func(tx writeTx) error, ins *insertOp) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := opPool.Get().(*writeOp)
	op.fn, op.ins, op.ran, op.wake, op.err, op.promote, op.finished = fn, ins, false, wake, nil, false, false
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		opPool.Put(op)
		return ErrClosed
	}
	w.pending = append(w.pending, op)
	lead := !w.leading
	w.leading = true
	w.mu.Unlock()
	if lead {
		w.lead(op)
	}
	for {
		<-op.done
		if !op.promote {
			break
		}
		op.promote = false
		w.lead(op)
	}
	if nx := op.next; nx != nil {
		op.next = nil
		nx.done <- struct{}{}
	}
	err := op.err
	op.fn, op.ins = nil, nil
	opPool.Put(op)
	return err
}

// lead runs batches until self has run, then passes the lead on.
func (w *writer) lead(self *writeOp) {
	for !self.finished {
		w.mu.Lock()
		if w.last > 1 && len(w.pending) < w.last {
			// The callers of the last batch are about to send their next
			// operations: let them run first so that those commit together.
			w.mu.Unlock()
			runtime.Gosched()
			w.mu.Lock()
		}
		n := len(w.pending)
		if n > w.maxBatch {
			n = w.maxBatch
		}
		batch := make([]*writeOp, n)
		copy(batch, w.pending)
		w.pending = w.pending[n:]
		w.last = n
		w.mu.Unlock()
		w.run(batch, self)
	}
	w.mu.Lock()
	if len(w.pending) > 0 {
		next := w.pending[0]
		next.promote = true
		next.done <- struct{}{}
	} else {
		w.leading = false
		w.idle.Broadcast()
	}
	w.mu.Unlock()
}

// close refuses new operations and waits for the running ones to finish.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	for w.leading {
		w.idle.Wait()
	}
	w.mu.Unlock()
}

func (w *writer) run(batch []*writeOp, self *writeOp) {
	if !w.attempt(batch, false, self) {
		w.attempt(batch, true, self)
	}
}

// attempt runs ops in one transaction and signals them. It returns false,
// having rolled back and signalled nothing, when the fast path (no
// savepoints) hit an op error in a batch of several ops.
func (w *writer) attempt(ops []*writeOp, savepoints bool, self *writeOp) bool {
	tx, err := w.st.beginWrite(context.Background())
	if err != nil {
		w.finish(ops, err, self)
		return true
	}
	wake, anyOK := false, false
	if savepoints {
		for _, op := range ops {
			op.ran = false
		}
	} else if !w.mergeInserts(tx, ops) {
		_ = w.st.rollback(tx)
		return false
	}
	for _, op := range ops {
		if op.ran {
			// Already inserted by mergeInserts.
		} else if !savepoints {
			op.err = op.fn(tx)
			if op.err != nil && len(ops) > 1 {
				_ = w.st.rollback(tx)
				return false
			}
		} else if op.err = w.st.savepoint(tx); op.err == nil {
			if op.err = op.fn(tx); op.err != nil {
				if rbErr := w.st.rollbackSavepoint(tx); rbErr != nil {
					op.err = errors.Join(op.err, rbErr)
				}
			} else {
				op.err = w.st.releaseSavepoint(tx)
			}
		}
		if op.err == nil {
			anyOK = true
			wake = wake || op.wake
		}
	}
	if !anyOK {
		_ = w.st.rollback(tx)
		w.finish(ops, nil, self)
		return true
	}
	if err := w.st.commit(tx); err != nil {
		w.finish(ops, err, self)
		return true
	}
	if wake && w.afterCommit != nil {
		w.afterCommit(wake)
	}
	w.finish(ops, nil, self)
	return true
}

// finish marks every op done and wakes their callers; a non-nil err
// overrides the ops' own results (the transaction did not commit). It wakes
// only the first waiting caller, which wakes the next one (doOp), and so on:
// each wake-up of a parked goroutine can cost the waker a futex call, and
// the leader's time is the queue's throughput. self, the leader's own op,
// is not waiting: its signal only stays in its buffered channel.
func (w *writer) finish(ops []*writeOp, err error, self *writeOp) {
	var first, prev *writeOp
	for _, op := range ops {
		if err != nil && op.err == nil {
			op.err = err
		}
		op.finished = true
		if op == self {
			op.done <- struct{}{} // the leader's own: buffered, nobody to wake
			continue
		}
		if prev == nil {
			first = op
		} else {
			prev.next = op
		}
		prev = op
	}
	if first != nil {
		first.done <- struct{}{}
	}
}

// mergeInserts runs the enqueues of a fast-path batch with one insertTasks
// call, in batch order, and marks them ran. With fewer than two enqueues it
// does nothing. It returns false when the merged insert failed: the caller
// then rolls back and reruns the batch with savepoints, where each enqueue
// runs alone.
func (w *writer) mergeInserts(tx writeTx, ops []*writeOp) bool {
	n, rows := 0, 0
	for _, op := range ops {
		op.ran = false
		if op.ins != nil {
			n++
			rows += len(op.ins.ps)
		}
	}
	if n < 2 {
		return true
	}
	all := make([]insertParams, 0, rows)
	for _, op := range ops {
		if op.ins != nil {
			all = append(all, op.ins.ps...)
		}
	}
	tasks, created, err := w.st.insertTasks(tx, all)
	if err != nil {
		return false
	}
	k := 0
	for _, op := range ops {
		if op.ins != nil {
			m := len(op.ins.ps)
			op.ins.tasks, op.ins.created = tasks[k:k+m:k+m], created[k:k+m:k+m]
			op.ran, op.err = true, nil
			k += m
		}
	}
	return true
}
