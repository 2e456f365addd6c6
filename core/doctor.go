package core

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Severity grades a doctor finding.
type Severity string

// Severities, mildest first. Warning and error findings make a report not OK.
const (
	SeverityOK      Severity = "ok"
	SeverityInfo    Severity = "info"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

// Finding is one result of Queue.Doctor: what was checked, what was found
// and what to do about it.
type Finding struct {
	Check    string
	Severity Severity
	Message  string
	// Advice says what to do; empty for ok findings.
	Advice string
}

// DoctorReport is the outcome of Queue.Doctor.
type DoctorReport struct {
	Path          string
	SchemaVersion int
	Findings      []Finding
	// OK is true when no finding is a warning or an error.
	OK bool
}

// DoctorOptions tune Queue.Doctor. The zero value gives the defaults.
type DoctorOptions struct {
	// WALWarnBytes: a -wal file larger than this is a warning; default 64 MiB.
	WALWarnBytes int64
	// MinFreeBytes: less free disk than this (or than the database's size,
	// which a backup or VACUUM needs) is a warning; default 512 MiB.
	MinFreeBytes int64
	// LeaseGrace: leases expired longer ago than this are stuck (a sweeper
	// would have requeued them); default 1 minute.
	LeaseGrace time.Duration
	// Integrity runs a quick or full integrity check as well; default none.
	Integrity IntegrityMode
}

// Defaults of DoctorOptions.
const (
	DefaultWALWarnBytes = 64 << 20
	DefaultMinFreeBytes = 512 << 20
	DefaultLeaseGrace   = time.Minute
)

// pragmaCanon maps symbolic pragma values to the numbers SQLite reports.
var pragmaCanon = map[string]map[string]string{
	"synchronous":   {"off": "0", "normal": "1", "full": "2", "extra": "3"},
	"temp_store":    {"default": "0", "file": "1", "memory": "2"},
	"auto_vacuum":   {"none": "0", "full": "1", "incremental": "2"},
	"foreign_keys":  {"on": "1", "off": "0", "true": "1", "false": "0", "yes": "1", "no": "0"},
	"secure_delete": {"on": "1", "off": "0", "true": "1", "false": "0", "fast": "2"},
}

func canonPragma(name, v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if m, ok := pragmaCanon[name]; ok {
		if c, ok := m[v]; ok {
			return c
		}
	}
	return v
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Doctor checks the database and its surroundings and says what to do about
// each finding: the path is on a local disk, WAL is on, the PRAGMAs in force
// are the configured ones (and safe), the schema version, incremental
// auto-vacuum, the -wal size, free disk space, free pages, stale workers,
// stuck leases, dead letters and when maintenance last ran; optionally an
// integrity check. Errors: ErrClosed, ErrBusy (only for failures to read;
// problems found are findings, not errors).
func (q *Queue) Doctor(ctx context.Context, o DoctorOptions) (DoctorReport, error) {
	if q.isClosed() {
		return DoctorReport{}, ErrClosed
	}
	if o.WALWarnBytes == 0 {
		o.WALWarnBytes = DefaultWALWarnBytes
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = DefaultMinFreeBytes
	}
	if o.LeaseGrace == 0 {
		o.LeaseGrace = DefaultLeaseGrace
	}
	integrity, err := ParseIntegrityMode(string(o.Integrity))
	if err != nil {
		return DoctorReport{}, err
	}
	r := DoctorReport{Path: q.opts.Path}
	add := func(check string, sev Severity, msg, advice string) {
		r.Findings = append(r.Findings, Finding{Check: check, Severity: sev, Message: msg, Advice: advice})
	}
	now := q.now()

	if net, kind := isNetworkPath(q.opts.Path); net {
		add("path", SeverityError, fmt.Sprintf("%s is on a network share (%s): SQLite's locking is not reliable there "+
			"and the database can be corrupted", q.opts.Path, kind),
			"move the database to a local disk (set PRISMQ_QUEUE_DB_PATH or pass the path) and restore a backup there")
	} else {
		add("path", SeverityOK, fmt.Sprintf("%s is on a local disk", q.opts.Path), "")
	}

	facts, err := q.st.facts(ctx)
	if err != nil {
		return r, fmt.Errorf("doctor: %w", err)
	}
	if facts.JournalMode == "wal" {
		add("journal_mode", SeverityOK, "journal_mode is WAL", "")
	} else {
		add("journal_mode", SeverityError, fmt.Sprintf("journal_mode is %s, not WAL: readers and the writer block "+
			"each other and workers in other processes see SQLITE_BUSY", facts.JournalMode),
			`remove the journal_mode override from the queue's pragmas (the default is WAL); `+
				`the next Open switches the file back`)
	}

	q.checkPragmas(ctx, add)

	v, err := q.st.schemaVersion(ctx)
	if err != nil {
		return r, fmt.Errorf("doctor: %w", err)
	}
	r.SchemaVersion = v
	if latest := LatestSchemaVersion(); v == latest {
		add("schema", SeverityOK, fmt.Sprintf("schema version %d (the latest this library knows)", v), "")
	} else {
		add("schema", SeverityWarning, fmt.Sprintf("schema version %d, this library's latest is %d", v, latest),
			"open the database once with the current library (it migrates on open)")
	}

	if facts.AutoVacuum == 2 {
		add("auto_vacuum", SeverityOK, "auto_vacuum is INCREMENTAL: maintenance returns free pages to the disk", "")
	} else {
		add("auto_vacuum", SeverityWarning, fmt.Sprintf("auto_vacuum is %s (a database created by an older "+
			"version): the file never shrinks after retention deletes tasks", strings.ToUpper(autoVacuumNames[facts.AutoVacuum])),
			"run `prismq-queue maintain --vacuum-full` once while workers are stopped (it rewrites the file and "+
				"needs free disk about the size of the database); incremental vacuum works from then on")
	}

	sizes := q.fileSizes()
	if sizes.WAL > o.WALWarnBytes {
		add("wal_size", SeverityWarning, fmt.Sprintf("the -wal file is %s (warning above %s): checkpoints are "+
			"not keeping up, or a long read transaction holds them back", mib(sizes.WAL), mib(o.WALWarnBytes)),
			"close long-running readers (a SQLite browser, a stuck backup), then run "+
				"`prismq-queue maintain --checkpoint truncate` while the queue is quiet")
	} else {
		add("wal_size", SeverityOK, fmt.Sprintf("the -wal file is %s", mib(sizes.WAL)), "")
	}

	dir := filepath.Dir(q.opts.Path)
	if free, ok := diskFree(dir); !ok {
		add("disk_space", SeverityInfo, "free disk space is unknown on this system", "")
	} else {
		need := max(o.MinFreeBytes, sizes.DB+sizes.WAL)
		msg := fmt.Sprintf("%s free in %s; the database is %s", mib(int64(min(free, 1<<62))), dir, mib(sizes.DB+sizes.WAL))
		if free < uint64(need) {
			add("disk_space", SeverityWarning, msg+fmt.Sprintf(" (want at least %s: a backup or VACUUM needs "+
				"room for a full copy)", mib(need)),
				"free disk space, move the database to a larger disk, or delete old tasks with "+
					"`prismq-queue maintain --retention-days N` / `prismq-queue purge`")
		} else {
			add("disk_space", SeverityOK, msg, "")
		}
	}

	if free := facts.FreelistCount * facts.PageSize; facts.PageCount > 0 &&
		facts.FreelistCount*5 > facts.PageCount && free > 4<<20 {
		add("free_pages", SeverityInfo, fmt.Sprintf("%s of the file is free pages", mib(free)),
			"`prismq-queue maintain` returns them to the disk (incremental vacuum)")
	}

	q.checkWorkersAndLeases(ctx, now, o.LeaseGrace, add)

	if last, err := q.st.maintenanceLastRun(ctx); err == nil {
		if last.IsZero() {
			add("maintenance", SeverityInfo, "scheduled maintenance has never run on this database",
				"schedule it (`prismq-queue worker --maintenance-interval 3600`, or Queue.schedule_maintenance) "+
					"or run `prismq-queue maintain` from cron / Task Scheduler")
		} else {
			add("maintenance", SeverityOK, fmt.Sprintf("scheduled maintenance last started %s ago",
				now.Sub(last).Round(time.Second)), "")
		}
	}

	if integrity != IntegrityNone {
		res, err := q.IntegrityCheck(ctx, integrity)
		switch {
		case err != nil:
			add("integrity", SeverityError, "the integrity check could not run: "+err.Error(),
				"restore the latest backup (`prismq-queue restore BACKUP`)")
		case res.OK:
			add("integrity", SeverityOK, fmt.Sprintf("%s integrity check: ok", integrity), "")
		default:
			add("integrity", SeverityError, fmt.Sprintf("%s integrity check found problems: %s", integrity,
				strings.Join(res.Messages, "; ")),
				"stop the workers and restore the latest backup (`prismq-queue restore BACKUP`)")
		}
	}

	r.OK = true
	for _, f := range r.Findings {
		if f.Severity == SeverityWarning || f.Severity == SeverityError {
			r.OK = false
		}
	}
	return r, nil
}

func (q *Queue) checkPragmas(ctx context.Context, add func(check string, sev Severity, msg, advice string)) {
	names := make([]string, 0, len(q.opts.Pragmas))
	for n := range q.opts.Pragmas {
		if n != "journal_mode" { // its own check
			names = append(names, n)
		}
	}
	sort.Strings(names)
	got, err := q.st.pragmaValues(ctx, names)
	if err != nil {
		add("pragmas", SeverityWarning, "the PRAGMAs could not be read: "+err.Error(), "run the doctor again")
		return
	}
	var wrong []string
	for _, n := range names {
		want, have := canonPragma(n, q.opts.Pragmas[n]), canonPragma(n, got[n])
		if want == have {
			continue
		}
		if n == "mmap_size" {
			// SQLite caps it at compile time; a smaller value is not a fault.
			if w, err1 := strconv.ParseInt(want, 10, 64); err1 == nil {
				if h, err2 := strconv.ParseInt(have, 10, 64); err2 == nil && h <= w {
					continue
				}
			}
		}
		wrong = append(wrong, fmt.Sprintf("%s is %s, configured %s", n, got[n], q.opts.Pragmas[n]))
	}
	if len(wrong) > 0 {
		add("pragmas", SeverityWarning, "PRAGMAs differ from the configuration: "+strings.Join(wrong, "; "),
			"check the pragma names and values passed to the queue; SQLite ignores unknown ones")
	} else {
		add("pragmas", SeverityOK, fmt.Sprintf("%d PRAGMAs as configured", len(names)), "")
	}
	type risky struct {
		name, bad, msg, advice string
	}
	for _, rk := range []risky{
		{"synchronous", "0", "synchronous=OFF: a power loss or OS crash can corrupt the database",
			"use synchronous=NORMAL (the default) or FULL"},
		{"foreign_keys", "0", "foreign_keys=OFF: logs of deleted tasks are not removed with them",
			"use foreign_keys=ON (the default)"},
	} {
		if canonPragma(rk.name, got[rk.name]) == rk.bad {
			add("pragma "+rk.name, SeverityWarning, rk.msg, rk.advice)
		}
	}
	if bt, err := strconv.ParseInt(got["busy_timeout"], 10, 64); err == nil && bt < 1000 {
		add("pragma busy_timeout", SeverityWarning, fmt.Sprintf("busy_timeout=%d ms: under contention from other "+
			"processes callers get QueueBusyError", bt), "use busy_timeout=5000 (the default) or more")
	}
}

func (q *Queue) checkWorkersAndLeases(ctx context.Context, now time.Time, grace time.Duration,
	add func(check string, sev Severity, msg, advice string)) {
	ws, err := q.st.workerRows(ctx)
	if err != nil {
		add("workers", SeverityWarning, "the worker registry could not be read: "+err.Error(), "run the doctor again")
		return
	}
	var stale, gone []string
	active := 0
	for i := range ws {
		w := &ws[i]
		w.HeartbeatAge = max(now.Sub(w.HeartbeatAt), 0)
		switch workerState(*w) {
		case WorkerStale:
			stale = append(stale, fmt.Sprintf("%s (host %s, pid %d, silent %s, %d running)", w.ID, w.Host, w.PID,
				w.HeartbeatAge.Round(time.Second), w.Running))
		case WorkerGone:
			if w.StoppedAt.IsZero() {
				gone = append(gone, w.ID)
			}
		default:
			active++
		}
	}
	if len(stale) > 0 {
		add("workers", SeverityWarning, fmt.Sprintf("%d stale workers (no heartbeat for longer than their lease): %s",
			len(stale), strings.Join(stale, "; ")),
			"check those processes (hung or killed?); their tasks go back to the queue when their leases expire")
	} else {
		add("workers", SeverityOK, fmt.Sprintf("%d active workers, none stale", active), "")
	}
	if len(gone) > 0 {
		add("gone_workers", SeverityInfo, fmt.Sprintf("%d workers vanished without stopping: %s", len(gone),
			strings.Join(gone, ", ")), "`prismq-queue maintain` prunes registry rows of workers gone for 7 days")
	}
	n, oldest, err := q.st.expiredLeases(ctx, now.Add(-grace))
	switch {
	case err != nil:
		add("leases", SeverityWarning, "leases could not be read: "+err.Error(), "run the doctor again")
	case n > 0:
		add("leases", SeverityWarning, fmt.Sprintf("%d tasks are stuck in leased with leases that expired up to "+
			"%s ago: no sweeper is running", n, now.Sub(oldest).Round(time.Second)),
			"run `prismq-queue sweep` now; keep a queue or worker open (each runs the sweeper unless disable_sweeper is set)")
	default:
		add("leases", SeverityOK, "no stuck leases", "")
	}
	counts, err := q.st.depthRows(ctx)
	if err == nil {
		var failed int64
		for _, c := range counts {
			if c.Status == StatusFailed {
				failed += c.Count
			}
		}
		if failed > 0 {
			add("dead_letters", SeverityInfo, fmt.Sprintf("%d failed tasks (dead letters)", failed),
				"inspect them with `prismq-queue list --status failed`; requeue with `prismq-queue requeue --dry-run` first")
		}
	}
}
