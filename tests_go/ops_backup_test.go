package tests_go

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

func requireNoSideFiles(t *testing.T, path string) {
	t.Helper()
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		_, err := os.Stat(path + suffix)
		require.ErrorIs(t, err, os.ErrNotExist, "%s%s must not exist", path, suffix)
	}
}

func TestBackupUnderConcurrentWritesRestoresAConsistentSnapshot(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	q, err := core.Open(ctx, core.Options{Path: filepath.Join(dir, "live.db")})
	require.NoError(t, err)
	defer q.Close()

	payload := rawJSON(`{"pad":"` + string(make([]byte, 0)) + `0123456789012345678901234567890123456789"}`)
	before := make([]core.EnqueueParams, 3000)
	for i := range before {
		before[i] = core.EnqueueParams{Type: "before", Payload: payload}
	}
	res, err := q.EnqueueMany(ctx, before)
	require.NoError(t, err)
	committedBefore := map[int64]bool{}
	for _, r := range res {
		committedBefore[r.Task.ID] = true
	}

	// Writers run for the whole backup: one enqueues in sequence (its ids in
	// order), one claims and completes.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seqMu sync.Mutex
	var sequence []int64
	var commits atomic.Int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, err := q.Enqueue(ctx, core.EnqueueParams{Type: "during", Payload: payload})
			if err != nil {
				t.Error(err)
				return
			}
			seqMu.Lock()
			sequence = append(sequence, r.Task.ID)
			seqMu.Unlock()
			commits.Add(1)
		}
	}()
	w, err := q.RegisterWorker(ctx, core.WorkerConfig{ID: "busy", Types: []string{"before"}})
	require.NoError(t, err)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ts, err := w.Claim(ctx, 10, 0)
			if err != nil {
				t.Error(err)
				return
			}
			for _, task := range ts {
				if err := w.Complete(ctx, task.ID, task.LeaseToken, nil); err != nil {
					t.Error(err)
					return
				}
			}
			commits.Add(1)
		}
	}()

	// Step a few pages at a time and let the writers commit between steps.
	var steps []core.BackupProgress
	backupPath := filepath.Join(dir, "backups", "snap.db")
	result, err := q.Backup(ctx, backupPath, core.BackupOptions{StepPages: 16, Progress: func(p core.BackupProgress) {
		steps = append(steps, p)
		if p.Phase == "copy" {
			n := commits.Load()
			deadline := time.Now().Add(5 * time.Second)
			for commits.Load() < n+2 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}})
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	require.Equal(t, backupPath, result.Path)
	require.Equal(t, []string{"ok"}, result.Integrity)
	require.Equal(t, core.LatestSchemaVersion(), result.SchemaVersion)
	require.Greater(t, len(steps), 5, "progress is reported step by step")
	require.Equal(t, "done", steps[len(steps)-1].Phase)
	last := steps[len(steps)-1]
	require.Equal(t, last.PagesTotal, last.PagesDone)
	requireNoSideFiles(t, backupPath)
	entries, err := os.ReadDir(filepath.Dir(backupPath))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no partial file left beside the backup")

	restored := filepath.Join(dir, "restored.db")
	rr, err := core.Restore(ctx, backupPath, restored, core.RestoreOptions{})
	require.NoError(t, err)
	require.Equal(t, result.Tasks, rr.Tasks)
	requireNoSideFiles(t, restored)

	rq, err := core.Open(ctx, core.Options{Path: restored, DisableSweeper: true})
	require.NoError(t, err)
	defer rq.Close()
	integrity, err := rq.IntegrityCheck(ctx, core.IntegrityFull)
	require.NoError(t, err)
	require.True(t, integrity.OK)
	present := map[int64]bool{}
	page, err := rq.List(ctx, core.ListFilter{Limit: 10000})
	require.NoError(t, err)
	require.Empty(t, page.NextAfterID)
	for _, task := range page.Tasks {
		present[task.ID] = true
	}
	for id := range committedBefore {
		require.True(t, present[id], "task %d was committed before the backup", id)
	}
	// A snapshot: the sequential enqueuer's tasks in the copy are a prefix of its sequence.
	seqMu.Lock()
	defer seqMu.Unlock()
	inCopy := 0
	for inCopy < len(sequence) && present[sequence[inCopy]] {
		inCopy++
	}
	for _, id := range sequence[inCopy:] {
		require.False(t, present[id], "task %d is in the copy although an earlier one is not", id)
	}
	require.Less(t, inCopy, len(sequence), "writes went on during the backup")
	requireCountersMatchTable(t, &harness{t: t, ctx: ctx, q: rq})
}

func TestBackupRefusesToOverwriteUnlessAskedAndNeverTheQueueItself(t *testing.T) {
	h := newHarness(t)
	h.enqueue(core.EnqueueParams{})
	dst := filepath.Join(t.TempDir(), "b.db")
	_, err := h.q.Backup(h.ctx, h.path, core.BackupOptions{Overwrite: true})
	require.ErrorIs(t, err, core.ErrInvalidArgument)
	require.NoError(t, writeFile(dst, []byte("not yet a backup")))
	_, err = h.q.Backup(h.ctx, dst, core.BackupOptions{})
	require.ErrorIs(t, err, core.ErrInvalidArgument)
	r, err := h.q.Backup(h.ctx, dst, core.BackupOptions{Overwrite: true, QuickCheck: true})
	require.NoError(t, err)
	require.Equal(t, int64(1), r.Tasks)
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	other := filepath.Join(t.TempDir(), "c.db")
	_, err = h.q.Backup(ctx, other, core.BackupOptions{})
	require.Error(t, err)
	_, statErr := os.Stat(other)
	require.ErrorIs(t, statErr, os.ErrNotExist, "a cancelled backup leaves nothing behind")
}

func TestRestoreRefusesADatabaseInUseInThisProcess(t *testing.T) {
	h := newHarness(t)
	h.enqueue(core.EnqueueParams{Type: "keep-me"})
	backup := filepath.Join(t.TempDir(), "b.db")
	_, err := h.q.Backup(h.ctx, backup, core.BackupOptions{})
	require.NoError(t, err)
	h.enqueue(core.EnqueueParams{Type: "after-backup"})

	_, err = core.Restore(h.ctx, backup, h.path, core.RestoreOptions{})
	require.ErrorIs(t, err, core.ErrBusy)
	require.Contains(t, err.Error(), "in use")
	st, err := h.q.Stats(h.ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), st.Total, "the database in use is untouched")
	h.enqueue(core.EnqueueParams{}) // and still works

	require.NoError(t, h.q.Close())
	r, err := core.Restore(h.ctx, backup, h.path, core.RestoreOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(1), r.Tasks)
	requireNoSideFiles(t, h.path)
	q, err := core.Open(h.ctx, core.Options{Path: h.path, DisableSweeper: true})
	require.NoError(t, err)
	defer q.Close()
	st, err = q.Stats(h.ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]map[core.Status]int64{"keep-me": {core.StatusQueued: 1}}, st.ByType)
}

func TestRestoreRefusesADatabaseOpenInAnotherProcessAndFoldsItsWALAfterAKill(t *testing.T) {
	db := filepath.Join(t.TempDir(), "shared.db")
	ctx := context.Background()
	q, err := core.Open(ctx, core.Options{Path: db, DisableSweeper: true})
	require.NoError(t, err)
	_, err = q.Enqueue(ctx, core.EnqueueParams{Type: "in-backup"})
	require.NoError(t, err)
	backup := filepath.Join(t.TempDir(), "b.db")
	_, err = q.Backup(ctx, backup, core.BackupOptions{})
	require.NoError(t, err)
	_, err = q.Enqueue(ctx, core.EnqueueParams{Type: "not-in-backup"})
	require.NoError(t, err)
	require.NoError(t, q.Close())

	holder := startChild(t, "holder", db, "other-process", "")
	require.Contains(t, holder.line(60*time.Second), "claimed")
	_, err = core.Restore(ctx, backup, db, core.RestoreOptions{})
	require.ErrorIs(t, err, core.ErrBusy)

	require.NoError(t, holder.cmd.Process.Kill()) // its -wal and -shm stay behind
	<-holder.exited
	_, err = os.Stat(db + "-wal")
	require.NoError(t, err, "a killed process leaves its WAL")
	r, err := core.Restore(ctx, backup, db, core.RestoreOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(1), r.Tasks)
	requireNoSideFiles(t, db)
	q, err = core.Open(ctx, core.Options{Path: db, DisableSweeper: true})
	require.NoError(t, err)
	defer q.Close()
	st, err := q.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]map[core.Status]int64{"in-backup": {core.StatusQueued: 1}}, st.ByType)
}

func TestRestoreRemovesStaleSideFilesOfADeletedDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// A live database's WAL and shared memory, copied while it is open: what a
	// deleted database's leftovers look like.
	live, err := core.Open(ctx, core.Options{Path: filepath.Join(dir, "live.db"), DisableSweeper: true})
	require.NoError(t, err)
	defer live.Close()
	for i := 0; i < 50; i++ {
		_, err = live.Enqueue(ctx, core.EnqueueParams{Type: "stale"})
		require.NoError(t, err)
	}
	backup := filepath.Join(dir, "b.db")
	q := newHarness(t)
	q.enqueue(core.EnqueueParams{Type: "fresh"})
	_, err = q.q.Backup(ctx, backup, core.BackupOptions{})
	require.NoError(t, err)

	target := filepath.Join(dir, "target.db")
	for _, suffix := range []string{"-wal", "-shm"} {
		b, err := os.ReadFile(filepath.Join(dir, "live.db") + suffix)
		require.NoError(t, err)
		require.NoError(t, writeFile(target+suffix, b))
	}
	r, err := core.Restore(ctx, backup, target, core.RestoreOptions{})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{target + "-wal", target + "-shm"}, r.StaleFilesRemoved)
	requireNoSideFiles(t, target)
	tq, err := core.Open(ctx, core.Options{Path: target, DisableSweeper: true})
	require.NoError(t, err)
	defer tq.Close()
	st, err := tq.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]map[core.Status]int64{"fresh": {core.StatusQueued: 1}}, st.ByType)
	check, err := tq.IntegrityCheck(ctx, core.IntegrityFull)
	require.NoError(t, err)
	require.True(t, check.OK)
}

func TestRestoreRefusesSomethingThatIsNotAQueueBackup(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.db")
	require.NoError(t, writeFile(junk, []byte("definitely not SQLite, just some bytes to read")))
	target := filepath.Join(dir, "t.db")
	_, err := core.Restore(context.Background(), junk, target, core.RestoreOptions{})
	require.ErrorIs(t, err, core.ErrSchema)
	_, err = os.Stat(target)
	require.ErrorIs(t, err, os.ErrNotExist, "nothing is created for a bad backup")
	_, err = core.Restore(context.Background(), filepath.Join(dir, "missing.db"), target, core.RestoreOptions{})
	require.ErrorIs(t, err, core.ErrIO)
	_, err = core.Restore(context.Background(), junk, junk, core.RestoreOptions{})
	require.ErrorIs(t, err, core.ErrInvalidArgument)
}
