package tests_go

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

// settle claims up to n queued tasks and settles them with op in one AckMany.
func settle(t *testing.T, h *harness, w *core.Worker, n int, op core.AckOp) []int64 {
	t.Helper()
	var done []int64
	for len(done) < n {
		ts := h.claim(w, min(n-len(done), core.MaxClaim))
		require.NotEmpty(t, ts)
		acks := make([]core.Ack, len(ts))
		for i, task := range ts {
			acks[i] = core.Ack{ID: task.ID, Token: task.LeaseToken, Op: op, Error: "boom"}
			done = append(done, task.ID)
		}
		errs, err := w.AckMany(h.ctx, acks)
		require.NoError(t, err)
		for _, e := range errs {
			require.NoError(t, e)
		}
	}
	return done
}

// requireCountersMatchTable checks the engine-kept counters against a count of the table.
func requireCountersMatchTable(t *testing.T, h *harness) {
	t.Helper()
	m, err := h.q.Metrics(h.ctx, core.MetricsOptions{})
	require.NoError(t, err)
	st, err := h.q.Stats(h.ctx) // GROUP BY over the tasks table
	require.NoError(t, err)
	require.Equal(t, st.Total, m.Total)
	require.Equal(t, st.ByStatus, m.ByStatus)
	for typ, counts := range st.ByType {
		for s, n := range counts {
			require.Equal(t, n, m.ByType[typ][s], "%s/%s", typ, s)
		}
	}
}

func TestRetentionDeletesOldFinishedTasksAndTheirLogsAndKeepsFailedOnesUnlessAsked(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{Strategy: core.FIFO})
	big := rawJSON(`{"blob":"` + strings.Repeat("x", 2000) + `"}`)
	batch := make([]core.EnqueueParams, 4600)
	for i := range batch {
		batch[i] = core.EnqueueParams{Type: "old", Payload: big, MaxAttempts: 1}
	}
	_, err := h.q.EnqueueMany(h.ctx, batch)
	require.NoError(t, err)
	oldDone := settle(t, h, w, 4500, core.AckComplete) // more than one retention batch
	oldFailed := settle(t, h, w, 50, core.AckFail)
	oldCancelled := h.claim(w, 50)
	for _, task := range oldCancelled {
		require.NoError(t, w.AckCancel(h.ctx, task.ID, task.LeaseToken))
	}
	require.NoError(t, h.q.AppendLog(h.ctx, oldDone[0], "info", "old log", nil))
	require.NoError(t, h.q.AppendLog(h.ctx, oldFailed[0], "info", "failed log", nil))

	h.clock.Advance(10 * 24 * time.Hour)
	recent := h.enqueue(core.EnqueueParams{Type: "new"})
	queuedOld := h.enqueue(core.EnqueueParams{Type: "waiting"}) // queued: never deleted by retention
	tk := h.claimOne(w)
	require.Equal(t, recent.ID, tk.ID)
	require.NoError(t, w.Complete(h.ctx, tk.ID, tk.LeaseToken, nil))
	require.NoError(t, h.q.AppendLog(h.ctx, recent.ID, "info", "recent log", nil))

	r, err := h.q.Maintain(h.ctx, core.MaintenanceOptions{Retention: 7 * 24 * time.Hour})
	require.NoError(t, err)
	require.NotNil(t, r.Retention)
	require.Equal(t, int64(4550), r.Retention.TasksDeleted, "completed and cancelled")
	require.Equal(t, int64(1), r.Retention.LogsDeleted)
	require.Equal(t, h.clock.Now().Add(-7*24*time.Hour), r.Retention.Cutoff)

	_, err = h.q.Get(h.ctx, oldDone[0])
	require.ErrorIs(t, err, core.ErrNotFound)
	_, err = h.q.Get(h.ctx, oldCancelled[0].ID)
	require.ErrorIs(t, err, core.ErrNotFound)
	require.Equal(t, core.StatusFailed, h.get(oldFailed[0]).Status)
	logs, err := h.q.Logs(h.ctx, oldFailed[0], 0)
	require.NoError(t, err)
	require.Len(t, logs, 1)
	require.Equal(t, core.StatusCompleted, h.get(recent.ID).Status)
	require.Equal(t, core.StatusQueued, h.get(queuedOld.ID).Status)
	requireCountersMatchTable(t, h)

	r, err = h.q.Maintain(h.ctx, core.MaintenanceOptions{Retention: 7 * 24 * time.Hour, PurgeFailed: true,
		IncrementalVacuum: true, Checkpoint: core.CheckpointTruncate})
	require.NoError(t, err)
	require.Equal(t, int64(50), r.Retention.TasksDeleted)
	require.Equal(t, int64(1), r.Retention.LogsDeleted)
	_, err = h.q.Get(h.ctx, oldFailed[0])
	require.ErrorIs(t, err, core.ErrNotFound)
	require.Equal(t, core.StatusCompleted, h.get(recent.ID).Status)
	requireCountersMatchTable(t, h)

	// The freed pages went back to the file system: new databases have incremental auto-vacuum.
	require.NotNil(t, r.Vacuum)
	require.Equal(t, "incremental", r.Vacuum.AutoVacuum)
	require.Greater(t, r.Vacuum.PagesFreed, int64(1000))
	require.NotNil(t, r.Checkpoint)
	require.False(t, r.Checkpoint.Busy)
	require.Less(t, r.After.DB, r.Before.DB)
	require.Zero(t, r.After.WAL, "truncate checkpoint")
}

func TestMaintainPrunesGoneWorkersAndChecksIntegrity(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{ID: "busy"})
	gone := h.worker(core.WorkerConfig{ID: "gone"})
	require.NoError(t, gone.Close(h.ctx))
	h.worker(core.WorkerConfig{ID: "vanished"}) // never stopped, never heard from again
	h.enqueue(core.EnqueueParams{})
	h.enqueue(core.EnqueueParams{})
	settle(t, h, w, 1, core.AckComplete)
	held := h.claimOne(w) // "busy" holds a lease: its row stays

	h.clock.Advance(8 * 24 * time.Hour)
	r, err := h.q.Maintain(h.ctx, core.MaintenanceOptions{PruneWorkers: 7 * 24 * time.Hour, Optimize: true,
		Integrity: core.IntegrityFull})
	require.NoError(t, err)
	require.Equal(t, int64(2), r.WorkersPruned)
	require.True(t, r.Optimized)
	require.NotNil(t, r.Integrity)
	require.True(t, r.Integrity.OK)
	require.Equal(t, []string{"ok"}, r.Integrity.Messages)
	require.Nil(t, r.Retention)
	ws, err := h.q.Workers(h.ctx)
	require.NoError(t, err)
	require.Len(t, ws, 1)
	require.Equal(t, "busy", ws[0].ID)
	require.Equal(t, int64(1), ws[0].Running)
	_ = held
}

func TestMaintainRejectsUnknownModes(t *testing.T) {
	h := newHarness(t)
	_, err := h.q.Maintain(h.ctx, core.MaintenanceOptions{Checkpoint: "sometimes"})
	require.ErrorIs(t, err, core.ErrInvalidArgument)
	_, err = h.q.Maintain(h.ctx, core.MaintenanceOptions{Integrity: "deep"})
	require.ErrorIs(t, err, core.ErrInvalidArgument)
	_, err = h.q.Maintain(h.ctx, core.MaintenanceOptions{Retention: -time.Hour})
	require.ErrorIs(t, err, core.ErrInvalidArgument)
}

func TestMaintainIfDueRunsOncePerIntervalAcrossQueues(t *testing.T) {
	h := newHarness(t)
	other, err := core.Open(h.ctx, core.Options{Path: h.path, Clock: h.clock, DisableSweeper: true})
	require.NoError(t, err)
	defer other.Close()
	o := core.MaintenanceOptions{Optimize: true}

	_, ran, err := h.q.MaintainIfDue(h.ctx, time.Hour, o)
	require.NoError(t, err)
	require.True(t, ran, "never maintained: due at once")
	_, ran, err = other.MaintainIfDue(h.ctx, time.Hour, o)
	require.NoError(t, err)
	require.False(t, ran, "the other queue's pass counts for this database")
	h.clock.Advance(59 * time.Minute)
	_, ran, err = h.q.MaintainIfDue(h.ctx, time.Hour, o)
	require.NoError(t, err)
	require.False(t, ran)
	h.clock.Advance(time.Minute)
	r, ran, err := other.MaintainIfDue(h.ctx, time.Hour, o)
	require.NoError(t, err)
	require.True(t, ran)
	require.True(t, r.Optimized)
	_, _, err = h.q.MaintainIfDue(h.ctx, 0, o)
	require.ErrorIs(t, err, core.ErrInvalidArgument)
}

func TestScheduledMaintenanceRunsItsFirstPassSoonAfterStarting(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{})
	for i := 0; i < 3; i++ {
		h.enqueue(core.EnqueueParams{})
	}
	settle(t, h, w, 3, core.AckComplete)
	h.clock.Advance(31 * 24 * time.Hour)

	require.NoError(t, h.q.ScheduleMaintenance(time.Hour, core.DefaultMaintenanceOptions()))
	require.Eventually(t, func() bool {
		st, err := h.q.Stats(h.ctx)
		return err == nil && st.Total == 0
	}, 20*time.Second, 20*time.Millisecond, "the first pass deletes the 31-day-old tasks")
	rep, err := h.q.Doctor(h.ctx, core.DoctorOptions{})
	require.NoError(t, err)
	require.Equal(t, core.SeverityOK, finding(t, rep, "maintenance").Severity)

	require.NoError(t, h.q.ScheduleMaintenance(0, core.MaintenanceOptions{}), "stops the schedule")
	require.ErrorIs(t, h.q.ScheduleMaintenance(time.Second, core.DefaultMaintenanceOptions()), core.ErrInvalidArgument)
	require.NoError(t, h.q.ScheduleMaintenance(time.Hour, core.DefaultMaintenanceOptions()))
	require.NoError(t, h.q.Close(), "closing stops a running schedule")
}

func TestPurgeAndRequeueByFilterWithDryRunAndCount(t *testing.T) {
	h := newHarness(t)
	w := h.worker(core.WorkerConfig{Strategy: core.FIFO})
	for i := 0; i < 6; i++ {
		h.enqueue(core.EnqueueParams{Type: "a", MaxAttempts: 1})
	}
	for i := 0; i < 4; i++ {
		h.enqueue(core.EnqueueParams{Type: "b", MaxAttempts: 1})
	}
	// a: 1-3 fail with "timeout", 4-6 fail with "bad input"; b: 7-8 complete, 9 leased, 10 queued.
	ts := h.claim(w, 8)
	for i, task := range ts {
		switch {
		case i < 3:
			_, err := w.Fail(h.ctx, task.ID, task.LeaseToken, "timeout after 30s", true)
			require.NoError(t, err)
		case i < 6:
			_, err := w.Fail(h.ctx, task.ID, task.LeaseToken, "bad input", false)
			require.NoError(t, err)
		default:
			require.NoError(t, w.Complete(h.ctx, task.ID, task.LeaseToken, nil))
		}
	}
	h.claimOne(w)

	dry, err := h.q.Requeue(h.ctx, core.TaskFilter{ErrorContains: "timeout", DryRun: true})
	require.NoError(t, err)
	require.Equal(t, core.BulkResult{DryRun: true, Matched: 3, SampleIDs: []int64{1, 2, 3}}, dry)
	require.Equal(t, core.StatusFailed, h.get(1).Status, "a dry run changes nothing")

	res, err := h.q.Requeue(h.ctx, core.TaskFilter{ErrorContains: "timeout", Limit: 2})
	require.NoError(t, err)
	require.Equal(t, int64(2), res.Matched)
	require.Equal(t, int64(2), res.Affected)
	require.Equal(t, core.StatusQueued, h.get(1).Status)
	require.Equal(t, int64(0), h.get(1).Attempts)
	require.Equal(t, core.StatusQueued, h.get(2).Status)
	require.Equal(t, core.StatusFailed, h.get(3).Status)

	_, err = h.q.Requeue(h.ctx, core.TaskFilter{Statuses: []core.Status{core.StatusCompleted}})
	require.ErrorIs(t, err, core.ErrInvalidArgument)
	_, err = h.q.Purge(h.ctx, core.TaskFilter{Statuses: []core.Status{core.StatusLeased}})
	require.ErrorIs(t, err, core.ErrInvalidArgument, "leased tasks are held by a worker")

	require.NoError(t, h.q.AppendLog(h.ctx, 4, "error", "bad", nil))
	dry, err = h.q.Purge(h.ctx, core.TaskFilter{Types: []string{"a"}, DryRun: true})
	require.NoError(t, err)
	require.Equal(t, int64(4), dry.Matched, "finished a tasks: 3,4,5,6 (1,2 are queued again)")
	res, err = h.q.Purge(h.ctx, core.TaskFilter{Types: []string{"a"}})
	require.NoError(t, err)
	require.Equal(t, int64(4), res.Affected)
	for _, id := range []int64{3, 4, 5, 6} {
		_, err := h.q.Get(h.ctx, id)
		require.ErrorIs(t, err, core.ErrNotFound)
	}
	res, err = h.q.Purge(h.ctx, core.TaskFilter{Statuses: []core.Status{core.StatusQueued},
		CreatedBefore: h.clock.Now().Add(time.Millisecond)})
	require.NoError(t, err)
	require.Equal(t, int64(3), res.Affected, "1, 2 and 10")
	left, err := h.q.List(h.ctx, core.ListFilter{})
	require.NoError(t, err)
	require.Equal(t, []int64{7, 8, 9}, ids(left.Tasks))
	requireCountersMatchTable(t, h)
}

func TestCountersStayExactThroughEveryTransition(t *testing.T) {
	h := newHarness(t, func(o *core.Options) { o.Retry = core.RetryPolicy{Base: time.Millisecond, Jitter: 0} })
	w := h.worker(core.WorkerConfig{Lease: time.Second})
	for i := 0; i < 40; i++ {
		h.enqueue(core.EnqueueParams{Type: []string{"x", "y"}[i%2], Priority: prio(int64(i % 3)), MaxAttempts: 2})
	}
	ts := h.claim(w, 30)
	var deadLetter int64
	for i, task := range ts {
		switch i % 6 {
		case 0:
			require.NoError(t, w.Complete(h.ctx, task.ID, task.LeaseToken, nil))
		case 1:
			_, err := w.Fail(h.ctx, task.ID, task.LeaseToken, "again", true)
			require.NoError(t, err)
		case 2:
			_, err := w.Fail(h.ctx, task.ID, task.LeaseToken, "never", false)
			require.NoError(t, err)
			deadLetter = task.ID
		case 3:
			require.NoError(t, w.Release(h.ctx, task.ID, task.LeaseToken))
		case 4:
			_, err := h.q.Cancel(h.ctx, task.ID)
			require.NoError(t, err)
			require.NoError(t, w.AckCancel(h.ctx, task.ID, task.LeaseToken))
		}
	}
	_, err := h.q.Cancel(h.ctx, 40)
	require.NoError(t, err)
	h.clock.Advance(2 * time.Second)
	_, err = h.q.Sweep(h.ctx) // the unsettled fifth of the claims
	require.NoError(t, err)
	_, err = h.q.Retry(h.ctx, deadLetter)
	require.NoError(t, err)
	requireCountersMatchTable(t, h)

	m, err := h.q.Metrics(context.Background(), core.MetricsOptions{})
	require.NoError(t, err)
	// Retried: 5 failures with attempts left, 5 expired leases requeued by the sweeper.
	require.Equal(t, int64(10), m.Totals.Retried)
	require.Equal(t, int64(5), m.Totals.Completed)
	require.Equal(t, int64(5), m.Totals.Failed, "the retried dead letter's failure still counts")
	require.Equal(t, int64(6), m.Totals.Cancelled)
	require.Equal(t, int64(4), m.Throughput.Failed, "the window sees finished tasks as they are now")
}
