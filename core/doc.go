// Package core is the PrismQ Task Queue engine: a persistent, multi-process
// task queue stored in one SQLite file through modernc.org/sqlite.
//
// A Queue is opened on a database path (Open). Producers enqueue tasks
// (Queue.Enqueue, Queue.EnqueueMany); workers register (Queue.RegisterWorker)
// and claim tasks under one of four strategies (FIFO, LIFO, PRIORITY,
// WEIGHTED_RANDOM). A claim grants a lease with a fencing token; Complete,
// Fail, Renew and Progress must present it and get ErrLeaseLost when it is
// stale. A sweeper returns expired leases to the queue (or fails them when
// their attempts are exhausted), so delivery is at least once.
//
// All SQL lives behind the store interface (store.go, store_sqlite.go).
// All writes of one Queue go through a single writer goroutine that commits
// the operations of concurrent callers together (writer.go).
package core
