package core

import (
	"context"
	"fmt"
	"time"
)

// TaskFilter selects tasks for Queue.Purge and Queue.Requeue. Unset fields
// match everything; set ones must all match.
type TaskFilter struct {
	Statuses []Status
	Types    []string
	// CreatedBefore matches tasks enqueued before this time.
	CreatedBefore time.Time
	// FinishedBefore matches finished tasks that finished before this time.
	FinishedBefore time.Time
	// ErrorContains matches tasks whose last error contains this text (case-sensitive).
	ErrorContains string
	// Limit caps how many tasks are affected (lowest ids first); 0 means no limit.
	Limit int64
	// DryRun only counts the matching tasks.
	DryRun bool
}

// BulkResult is the outcome of Queue.Purge or Queue.Requeue.
type BulkResult struct {
	DryRun bool
	// Matched counts the tasks that matched the filter (capped by Limit).
	Matched int64
	// Affected counts the tasks deleted or requeued (0 on a dry run).
	Affected int64
	// SampleIDs are the lowest matching ids, at most 20.
	SampleIDs []int64
}

const bulkSample = 20

func (f *TaskFilter) check(what string, allowed map[Status]bool, defaults []Status) error {
	if f.Limit < 0 {
		return invalidf("%s: limit must be >= 0", what)
	}
	if len(f.Statuses) == 0 {
		f.Statuses = defaults
	}
	for _, s := range f.Statuses {
		if !s.Valid() {
			return invalidf("%s: unknown status %q", what, s)
		}
		if !allowed[s] {
			return invalidf("%s: tasks in status %s cannot be %sd", what, s, what)
		}
	}
	for _, t := range f.Types {
		if err := checkText("task type", t, maxTypeLen, true); err != nil {
			return err
		}
	}
	return checkText("error text", f.ErrorContains, 10_000, false)
}

// Purge deletes the tasks matching f, with their logs, in batches of short
// transactions. Statuses default to the finished ones (completed, failed,
// cancelled); queued tasks are purged only when asked for; leased tasks
// never are (a worker holds them: cancel them first). With f.DryRun it only
// counts. Errors: ErrInvalidArgument, ErrClosed, ErrBusy.
func (q *Queue) Purge(ctx context.Context, f TaskFilter) (BulkResult, error) {
	if err := f.check("purge", map[Status]bool{StatusQueued: true, StatusCompleted: true, StatusFailed: true,
		StatusCancelled: true}, []Status{StatusCompleted, StatusFailed, StatusCancelled}); err != nil {
		return BulkResult{}, err
	}
	return q.bulk(ctx, f, false, func(tx writeTx, ids []int64) (int64, error) {
		_, n, err := q.st.deleteTasksByID(tx, ids)
		return n, err
	})
}

// Requeue puts the failed or cancelled tasks matching f back to queued with
// their attempts reset, as Retry does for one task, in batches. Statuses
// default to failed. With f.DryRun it only counts. Errors:
// ErrInvalidArgument, ErrClosed, ErrBusy.
func (q *Queue) Requeue(ctx context.Context, f TaskFilter) (BulkResult, error) {
	if err := f.check("requeue", map[Status]bool{StatusFailed: true, StatusCancelled: true},
		[]Status{StatusFailed}); err != nil {
		return BulkResult{}, err
	}
	return q.bulk(ctx, f, true, func(tx writeTx, ids []int64) (int64, error) {
		return q.st.requeueByID(tx, ids, q.now())
	})
}

func (q *Queue) bulk(ctx context.Context, f TaskFilter, wake bool, apply func(writeTx, []int64) (int64, error)) (BulkResult, error) {
	if q.isClosed() {
		return BulkResult{}, ErrClosed
	}
	res := BulkResult{DryRun: f.DryRun}
	var err error
	res.Matched, res.SampleIDs, err = q.st.countMatching(ctx, f, f.Limit, bulkSample)
	if err != nil || f.DryRun {
		return res, err
	}
	var cursor int64
	for f.Limit == 0 || res.Affected < f.Limit {
		n := bulkBatch
		if f.Limit > 0 {
			n = int(min(int64(n), f.Limit-res.Affected))
		}
		// The writer may run fn twice (a failed group commit is retried op by
		// op), so fn only reads 'from' and assigns its outputs.
		from := cursor
		var got int
		var last, affected int64
		err := q.write(ctx, wake, func(tx writeTx) error {
			got, last, affected = 0, from, 0
			ids, err := q.st.matchingIDs(tx, f, from, n)
			if err != nil || len(ids) == 0 {
				return err
			}
			got, last = len(ids), ids[len(ids)-1]
			affected, err = apply(tx, ids)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("bulk: %w", err)
		}
		cursor = last
		res.Affected += affected
		if got < n {
			break
		}
	}
	return res, nil
}
