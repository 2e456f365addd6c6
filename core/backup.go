package core

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Backup design. SQLite's online backup API copies the database page by page
// from a connection that holds one read transaction for the whole copy. In
// WAL mode that read transaction is a snapshot: workers keep committing
// while the copy runs, the copy never restarts (it would under steady writes
// without the transaction), and it contains exactly the transactions
// committed before it began. Copying in steps gives progress, which VACUUM
// INTO (the other consistent snapshot SQLite offers) cannot report. The copy
// is written beside the destination, switched to journal_mode=DELETE (one
// self-contained file, no -wal needed to read it), checked with
// PRAGMA integrity_check, and only then renamed into place: a failed or
// interrupted backup never leaves a half-written file under the destination
// name.

// BackupOptions tune Queue.Backup. The zero value gives the defaults.
type BackupOptions struct {
	// Overwrite replaces an existing file at the destination; default false
	// (ErrInvalidArgument when it exists).
	Overwrite bool
	// StepPages is how many pages are copied per step (progress is reported
	// after each); default 1024 (4 MiB with 4 KiB pages).
	StepPages int
	// QuickCheck verifies the copy with PRAGMA quick_check instead of the
	// full integrity_check (faster on large files; skips index cross-checks).
	QuickCheck bool
	// Progress, when set, is called after every step and at each phase.
	Progress func(BackupProgress)
}

// BackupProgress reports a running backup or restore.
type BackupProgress struct {
	// Phase: "check" (restore: checking the backup), "copy", "verify", "done".
	Phase      string
	PagesDone  int
	PagesTotal int
}

// BackupResult describes a finished backup or restore.
type BackupResult struct {
	Path          string // the file written
	Bytes         int64
	Pages         int
	SchemaVersion int
	Tasks         int64
	// Integrity is the check's output: ["ok"] (it is always ok in a result;
	// a failed check is an error).
	Integrity []string
	// StaleFilesRemoved lists -wal, -shm or -journal files of a deleted
	// database that Restore removed before writing (restore only).
	StaleFilesRemoved []string
	Duration          time.Duration
}

const defaultStepPages = 1024

func progressOf(f func(BackupProgress), phase string) func(done, total int) {
	return func(done, total int) {
		if f != nil {
			f(BackupProgress{Phase: phase, PagesDone: done, PagesTotal: total})
		}
	}
}

// Backup writes a consistent snapshot of the queue to the file dst while
// workers keep running, verifies it with an integrity check and reports
// progress (see the design note above). Errors: ErrInvalidArgument (dst
// empty, a directory, the queue's own file, or existing without
// Overwrite), ErrIO (cannot write, or the copy failed its check), ErrClosed,
// and ctx's error when cancelled (nothing is left at dst).
func (q *Queue) Backup(ctx context.Context, dst string, o BackupOptions) (BackupResult, error) {
	started := time.Now()
	if q.isClosed() {
		return BackupResult{}, ErrClosed
	}
	if o.StepPages == 0 {
		o.StepPages = defaultStepPages
	}
	if o.StepPages < 1 {
		return BackupResult{}, invalidf("backup step must be >= 1 page, got %d", o.StepPages)
	}
	dst, err := checkFilePath("backup destination", dst)
	if err != nil {
		return BackupResult{}, err
	}
	if samePath(dst, q.opts.Path) {
		return BackupResult{}, invalidf("backup destination %s is the queue's own database", dst)
	}
	if st, err := os.Stat(dst); err == nil {
		if st.IsDir() {
			return BackupResult{}, invalidf("backup destination %s is a directory", dst)
		}
		if !o.Overwrite {
			return BackupResult{}, invalidf("backup destination %s exists (pass overwrite to replace it)", dst)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return BackupResult{}, fmt.Errorf("%w: create folder for %s: %v", ErrIO, dst, err)
	}
	tmp := fmt.Sprintf("%s.partial-%d", dst, os.Getpid())
	for _, f := range sideFiles(tmp) {
		_, _ = removeIfExists(f)
	}
	done := false
	defer func() {
		if !done {
			for _, f := range sideFiles(tmp) {
				_, _ = removeIfExists(f)
			}
		}
	}()
	var pages int
	copyProgress := progressOf(o.Progress, "copy")
	if err := q.st.backupTo(ctx, tmp, o.StepPages, func(d, t int) { pages = t; copyProgress(d, t) }); err != nil {
		return BackupResult{}, fmt.Errorf("backup %s: %w", dst, err)
	}
	progressOf(o.Progress, "verify")(pages, pages)
	info, err := inspectDatabaseFile(ctx, tmp, true, !o.QuickCheck)
	if err != nil {
		return BackupResult{}, fmt.Errorf("backup %s: verify: %w", dst, err)
	}
	if !integrityOK(info.Integrity) {
		return BackupResult{}, fmt.Errorf("%w: backup %s failed its integrity check: %s", ErrIO, dst,
			strings.Join(info.Integrity, "; "))
	}
	if err := syncFile(tmp); err != nil {
		return BackupResult{}, fmt.Errorf("%w: backup %s: sync: %v", ErrIO, dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return BackupResult{}, fmt.Errorf("%w: backup %s: %v", ErrIO, dst, err)
	}
	done = true
	syncDir(filepath.Dir(dst))
	res := BackupResult{Path: dst, Pages: pages, SchemaVersion: info.SchemaVersion, Tasks: info.Tasks,
		Integrity: info.Integrity, Duration: time.Since(started)}
	if st, err := os.Stat(dst); err == nil {
		res.Bytes = st.Size()
	}
	progressOf(o.Progress, "done")(pages, pages)
	return res, nil
}

// RestoreOptions tune Restore. The zero value gives the defaults.
type RestoreOptions struct {
	// AllowNetworkPath permits a target on a network share (see Options).
	AllowNetworkPath bool
	// StepPages and Progress as in BackupOptions.
	StepPages int
	Progress  func(BackupProgress)
}

// Restore replaces the queue database at target with the backup file src.
// It checks src first (a queue database, integrity check passes, schema not
// newer than this library), refuses with ErrBusy while any connection or
// process has target open (close every Queue and stop every worker on it
// first), then copies src over target through SQLite with target locked
// exclusively, and checks the result. It never leaves a -wal or -shm beside
// the restored file: the old database's WAL is folded and deleted before the
// copy, and side files left by a process that died, or by a deleted
// database, are removed (the restored file would otherwise replay them). A target that does not exist
// is created. Errors: ErrInvalidArgument, ErrBusy (in use), ErrSchema (src is
// not a queue database, is damaged or is newer), ErrNetworkPath, ErrIO.
func Restore(ctx context.Context, src, target string, o RestoreOptions) (BackupResult, error) {
	started := time.Now()
	if o.StepPages == 0 {
		o.StepPages = defaultStepPages
	}
	if o.StepPages < 1 {
		return BackupResult{}, invalidf("restore step must be >= 1 page, got %d", o.StepPages)
	}
	src, err := checkFilePath("backup file", src)
	if err != nil {
		return BackupResult{}, err
	}
	if !o.AllowNetworkPath {
		if net, kind := isNetworkPath(target); net {
			return BackupResult{}, fmt.Errorf("%w: %s (%s): restore to a local disk", ErrNetworkPath, target, kind)
		}
	}
	target, err = checkFilePath("restore target", target)
	if err != nil {
		return BackupResult{}, err
	}
	if samePath(src, target) {
		return BackupResult{}, invalidf("the backup and the restore target are the same file (%s)", src)
	}
	st, err := os.Stat(src)
	if err != nil {
		return BackupResult{}, fmt.Errorf("%w: backup file %s: %v", ErrIO, src, err)
	}
	if st.IsDir() {
		return BackupResult{}, invalidf("backup file %s is a directory", src)
	}
	progressOf(o.Progress, "check")(0, 0)
	info, err := inspectDatabaseFile(ctx, src, false, false)
	if err != nil {
		return BackupResult{}, fmt.Errorf("restore: backup %s: %w", src, err)
	}
	if !integrityOK(info.Integrity) {
		return BackupResult{}, fmt.Errorf("%w: backup %s is damaged: %s", ErrSchema, src, strings.Join(info.Integrity, "; "))
	}
	if latest := LatestSchemaVersion(); info.SchemaVersion > latest {
		return BackupResult{}, fmt.Errorf("%w: backup %s has schema version %d, newer than this library's %d",
			ErrSchema, src, info.SchemaVersion, latest)
	}
	if tst, err := os.Stat(target); err == nil && tst.IsDir() {
		return BackupResult{}, invalidf("restore target %s is a directory", target)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return BackupResult{}, fmt.Errorf("%w: create folder for %s: %v", ErrIO, target, err)
	}
	res := BackupResult{Path: target, StaleFilesRemoved: []string{}}
	if _, err := os.Stat(target); errors.Is(err, os.ErrNotExist) {
		// Side files without their database belong to a deleted one.
		for _, f := range sideFiles(target)[1:] {
			removed, err := removeIfExists(f)
			if err != nil {
				return res, fmt.Errorf("%w: remove stale %s: %v", ErrIO, f, err)
			}
			if removed {
				res.StaleFilesRemoved = append(res.StaleFilesRemoved, f)
			}
		}
	}
	var pages int
	copyProgress := progressOf(o.Progress, "copy")
	stale, err := restoreInto(ctx, src, target, o.StepPages, func(d, t int) { pages = t; copyProgress(d, t) })
	res.StaleFilesRemoved = append(res.StaleFilesRemoved, stale...)
	if err != nil {
		return res, err
	}
	for _, f := range sideFiles(target)[1:] {
		if _, err := os.Stat(f); err == nil {
			return res, fmt.Errorf("%w: restore left %s beside the database (another process opened it?)", ErrIO, f)
		}
	}
	progressOf(o.Progress, "verify")(pages, pages)
	got, err := inspectDatabaseFile(ctx, target, false, false)
	if err != nil {
		return res, fmt.Errorf("restore: verify %s: %w", target, err)
	}
	if !integrityOK(got.Integrity) {
		return res, fmt.Errorf("%w: restored %s failed its integrity check: %s", ErrIO, target,
			strings.Join(got.Integrity, "; "))
	}
	res.Pages, res.SchemaVersion, res.Tasks, res.Integrity = pages, got.SchemaVersion, got.Tasks, got.Integrity
	if st, err := os.Stat(target); err == nil {
		res.Bytes = st.Size()
	}
	res.Duration = time.Since(started)
	progressOf(o.Progress, "done")(pages, pages)
	return res, nil
}

func integrityOK(msgs []string) bool { return len(msgs) == 1 && msgs[0] == "ok" }

// sideFiles lists a database file and the files SQLite keeps beside it.
func sideFiles(path string) []string {
	return []string{path, path + "-wal", path + "-shm", path + "-journal"}
}

func checkFilePath(what, p string) (string, error) {
	if strings.TrimSpace(p) == "" {
		return "", invalidf("%s path is empty", what)
	}
	if strings.ContainsRune(p, 0) {
		return "", invalidf("%s path contains a NUL byte", what)
	}
	if strings.HasPrefix(p, "file:") || p == ":memory:" {
		return "", invalidf("%s must be a file path, not a URI or :memory: (%q)", what, p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", invalidf("%s path %q: %v", what, p, err)
	}
	return abs, nil
}

// samePath reports whether a and b name the same file (case-insensitively
// on Windows and macOS, whose usual file systems ignore case).
func samePath(a, b string) bool {
	a, b = filepath.Clean(a), filepath.Clean(b)
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		if strings.EqualFold(a, b) {
			return true
		}
	} else if a == b {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a rename durable on Unix; Windows cannot open a folder for
// sync (and does not need it), so errors are ignored.
func syncDir(dir string) {
	if runtime.GOOS == "windows" {
		return
	}
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		_ = f.Close()
	}
}
