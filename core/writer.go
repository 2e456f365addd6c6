package core

import (
	"context"
	"errors"
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
	tx, err := w.st.beginWrite(context.Background())
	if err != nil {
		w.finish(live, err)
		return
	}
	single := len(live) == 1
	wake, anyOK := false, false
	for _, op := range live {
		if single {
			op.err = op.fn(tx)
		} else if err := w.st.savepoint(tx); err != nil {
			op.err = err
		} else if op.err = op.fn(tx); op.err != nil {
			if rbErr := w.st.rollbackSavepoint(tx); rbErr != nil {
				op.err = errors.Join(op.err, rbErr)
			}
		} else {
			op.err = w.st.releaseSavepoint(tx)
		}
		if op.err == nil {
			anyOK = true
			wake = wake || op.wake
		}
	}
	if !anyOK {
		_ = w.st.rollback(tx)
		w.finish(live, nil)
		return
	}
	if err := w.st.commit(tx); err != nil {
		w.finish(live, err)
		return
	}
	w.finish(live, nil)
	if w.afterCommit != nil {
		w.afterCommit(wake)
	}
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
