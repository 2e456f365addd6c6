package core

import (
	"context"
	"errors"
	"runtime"
	"sync"
)

// writer owns the store's write connection. Every mutating operation of a
// Queue is sent to it as a writeOp; it commits the operations that arrive
// together in one transaction (group commit), each inside a savepoint so
// that one failing operation does not undo the others. SQLite has a single
// writer per file, so this turns N concurrent callers into one commit
// instead of N.
type writer struct {
	st       store
	ops      chan *writeOp
	maxBatch int
	stop     chan struct{}
	done     chan struct{}
	// afterCommit runs after each successful commit with the flags of the batch.
	afterCommit func(wake bool)
	closeOnce   sync.Once
}

type writeOp struct {
	ctx context.Context
	fn  func(tx writeTx) error
	// wake asks waiting claimers to look again after the commit (new or requeued tasks).
	wake bool
	err  error
	done chan struct{}
}

func newWriter(st store, maxBatch int, afterCommit func(bool)) *writer {
	w := &writer{
		st: st, ops: make(chan *writeOp, maxBatch), maxBatch: maxBatch,
		stop: make(chan struct{}), done: make(chan struct{}), afterCommit: afterCommit,
	}
	go w.loop()
	return w
}

var opPool = sync.Pool{New: func() any { return &writeOp{done: make(chan struct{}, 1)} }}

// do runs fn in a write transaction and returns once it is committed (or
// failed). wake marks operations that make tasks claimable.
func (w *writer) do(ctx context.Context, wake bool, fn func(tx writeTx) error) error {
	op := opPool.Get().(*writeOp)
	op.ctx, op.fn, op.wake, op.err = ctx, fn, wake, nil
	select {
	case w.ops <- op:
	case <-w.stop:
		opPool.Put(op)
		return ErrClosed
	case <-ctx.Done():
		opPool.Put(op)
		return ctx.Err()
	}
	// The op is now owned by the writer until it signals done; waiting for
	// it even when ctx ends keeps the result honest (it may have committed).
	<-op.done
	err := op.err
	op.ctx, op.fn = nil, nil
	opPool.Put(op)
	return err
}

func (w *writer) close() {
	w.closeOnce.Do(func() {
		close(w.stop)
		<-w.done
	})
}

func (w *writer) loop() {
	defer close(w.done)
	batch := make([]*writeOp, 0, w.maxBatch)
	for {
		select {
		case op := <-w.ops:
			if len(batch) > 1 {
				// The last batch had several callers; they are about to send
				// their next ops. Let them run first so those commit together.
				runtime.Gosched()
			}
			batch = append(batch[:0], op)
		case <-w.stop:
			// Fail what is still queued; nothing new can arrive.
			for {
				select {
				case op := <-w.ops:
					op.err = ErrClosed
					op.done <- struct{}{}
				default:
					return
				}
			}
		}
	drain:
		for len(batch) < w.maxBatch {
			select {
			case op := <-w.ops:
				batch = append(batch, op)
			default:
				break drain
			}
		}
		w.run(batch)
	}
}

func (w *writer) run(batch []*writeOp) {
	live := batch[:0:0]
	for _, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.err = err
			op.done <- struct{}{}
			continue
		}
		live = append(live, op)
	}
	if len(live) == 0 {
		return
	}
	// Fast path: no savepoints. Should any op of a multi-op batch fail, the
	// whole transaction is rolled back and the batch runs again with a
	// savepoint around each op, so that the failure undoes only its own op.
	if !w.attempt(live, false) {
		w.attempt(live, true)
	}
}

// attempt runs ops in one transaction and signals them. It returns false,
// having rolled back and signalled nothing, when the fast path hit an op error.
func (w *writer) attempt(ops []*writeOp, savepoints bool) bool {
	tx, err := w.st.beginWrite(context.Background())
	if err != nil {
		w.finish(ops, err)
		return true
	}
	wake, anyOK := false, false
	for _, op := range ops {
		if !savepoints {
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
		w.finish(ops, nil)
		return true
	}
	if err := w.st.commit(tx); err != nil {
		w.finish(ops, err)
		return true
	}
	if wake && w.afterCommit != nil {
		w.afterCommit(wake)
	}
	w.finish(ops, nil)
	return true
}

// finish signals every op; a non-nil err overrides the ops' own results
// (the transaction did not commit).
func (w *writer) finish(ops []*writeOp, err error) {
	for _, op := range ops {
		if err != nil && op.err == nil {
			op.err = err
		}
		op.done <- struct{}{}
	}
}
