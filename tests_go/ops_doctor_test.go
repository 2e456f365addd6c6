package tests_go

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prismq/queue/core"
)

// finding returns the report's finding for check, failing when there is none.
func finding(t *testing.T, r core.DoctorReport, check string) core.Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("no %q finding in %+v", check, r.Findings)
	return core.Finding{}
}

func TestDoctorFindsNothingWrongWithAFreshDefaultDatabase(t *testing.T) {
	h := newHarness(t)
	r, err := h.q.Doctor(h.ctx, core.DoctorOptions{Integrity: core.IntegrityQuick})
	require.NoError(t, err)
	require.True(t, r.OK, "%+v", r.Findings)
	require.Equal(t, core.LatestSchemaVersion(), r.SchemaVersion)
	for _, check := range []string{"path", "journal_mode", "pragmas", "schema", "auto_vacuum", "wal_size",
		"disk_space", "workers", "leases", "integrity"} {
		require.Equal(t, core.SeverityOK, finding(t, r, check).Severity, check)
	}
	require.Equal(t, core.SeverityInfo, finding(t, r, "maintenance").Severity, "never run yet")
	for _, f := range r.Findings {
		if f.Severity != core.SeverityOK {
			require.NotEmpty(t, f.Advice, "every finding says what to do: %+v", f)
		}
	}
}

func TestDoctorReportsAMisconfiguredDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.db")
	ctx := context.Background()
	// An "older" file: created without incremental auto-vacuum.
	first, err := core.Open(ctx, core.Options{Path: path, DisableSweeper: true})
	require.NoError(t, err)
	require.NoError(t, first.Close())
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	_, err = db.Exec(`PRAGMA auto_vacuum = NONE; VACUUM`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	clock := newFakeClock()
	q, err := core.Open(ctx, core.Options{Path: path, Clock: clock, DisableSweeper: true, Pragmas: map[string]string{
		"journal_mode": "DELETE", "synchronous": "OFF", "foreign_keys": "OFF", "busy_timeout": "0",
	}})
	require.NoError(t, err)
	defer q.Close()
	w, err := q.RegisterWorker(ctx, core.WorkerConfig{ID: "hung-worker", Lease: time.Second})
	require.NoError(t, err)
	_, err = q.Enqueue(ctx, core.EnqueueParams{Type: "job"})
	require.NoError(t, err)
	_, err = q.Enqueue(ctx, core.EnqueueParams{Type: "job", MaxAttempts: 1})
	require.NoError(t, err)
	ts, err := w.Claim(ctx, 2, 0)
	require.NoError(t, err)
	_, err = w.Fail(ctx, ts[1].ID, ts[1].LeaseToken, "broken", false)
	require.NoError(t, err)
	clock.Advance(5 * time.Minute) // the hung worker's lease ended long ago; no sweeper ran

	r, err := q.Doctor(ctx, core.DoctorOptions{MinFreeBytes: 1 << 62})
	require.NoError(t, err)
	require.False(t, r.OK)
	expect := map[string]core.Severity{
		"journal_mode":        core.SeverityError,
		"auto_vacuum":         core.SeverityWarning,
		"pragma synchronous":  core.SeverityWarning,
		"pragma foreign_keys": core.SeverityWarning,
		"pragma busy_timeout": core.SeverityWarning,
		"disk_space":          core.SeverityWarning,
		"leases":              core.SeverityWarning,
		"dead_letters":        core.SeverityInfo,
		"path":                core.SeverityOK,
		"schema":              core.SeverityOK,
		"pragmas":             core.SeverityOK, // as configured, however unwise
		"workers":             core.SeverityOK, // 5 min silent with a 1 s lease: gone, not stale
		"gone_workers":        core.SeverityInfo,
	}
	for check, sev := range expect {
		f := finding(t, r, check)
		require.Equal(t, sev, f.Severity, "%s: %s", check, f.Message)
		if sev != core.SeverityOK {
			require.NotEmpty(t, f.Advice, check)
		}
	}
	require.Contains(t, finding(t, r, "journal_mode").Message, "delete")
	require.Contains(t, finding(t, r, "leases").Message, "1 tasks are stuck")
	require.Contains(t, finding(t, r, "leases").Advice, "prismq-queue sweep")
	require.Contains(t, finding(t, r, "auto_vacuum").Advice, "--vacuum-full")
	require.Contains(t, finding(t, r, "gone_workers").Message, "hung-worker")

	// The advice works: a full vacuum switches the file to incremental auto-vacuum.
	_, err = q.Maintain(ctx, core.MaintenanceOptions{VacuumFull: true})
	require.NoError(t, err)
	r, err = q.Doctor(ctx, core.DoctorOptions{})
	require.NoError(t, err)
	require.Equal(t, core.SeverityOK, finding(t, r, "auto_vacuum").Severity)
}

func TestDoctorWarnsAboutStaleWorkersALargeWALAndPragmasThatDidNotApply(t *testing.T) {
	h := newHarness(t, func(o *core.Options) {
		o.Pragmas = map[string]string{"cache_size": "-4000", "no_such_pragma": "1"}
	})
	w := h.worker(core.WorkerConfig{ID: "slow", Lease: 10 * time.Second})
	h.enqueue(core.EnqueueParams{})
	h.claimOne(w)
	h.clock.Advance(30 * time.Second) // 3 leases silent: stale, not yet gone

	r, err := h.q.Doctor(h.ctx, core.DoctorOptions{WALWarnBytes: 1, LeaseGrace: time.Hour})
	require.NoError(t, err)
	require.False(t, r.OK)
	f := finding(t, r, "workers")
	require.Equal(t, core.SeverityWarning, f.Severity)
	require.Contains(t, f.Message, "slow")
	require.Equal(t, core.SeverityWarning, finding(t, r, "wal_size").Severity)
	require.Contains(t, finding(t, r, "wal_size").Advice, "--checkpoint truncate")
	require.Equal(t, core.SeverityOK, finding(t, r, "leases").Severity, "expired 20 s ago, within the grace")
	f = finding(t, r, "pragmas")
	require.Equal(t, core.SeverityWarning, f.Severity)
	require.True(t, strings.Contains(f.Message, "no_such_pragma"), f.Message)
	require.NotContains(t, f.Message, "cache_size")
}
