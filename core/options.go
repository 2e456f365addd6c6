package core

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Options configure Open. The zero value is usable: every field has a default.
type Options struct {
	// Path of the database file. "" means DefaultPath().
	Path string
	// AllowNetworkPath permits a database on a network share (SQLite locking is
	// unreliable there; default false: Open fails with ErrNetworkPath).
	AllowNetworkPath bool
	// Pragmas override DefaultPragmas by name (e.g. "synchronous": "FULL").
	Pragmas map[string]string
	// Clock is the time source; default SystemClock.
	Clock Clock
	// MaxPayloadBytes limits payload, requirements and result JSON; default 1 MiB.
	MaxPayloadBytes int
	// DefaultLease is the lease of workers that set none; default 60 s.
	DefaultLease time.Duration
	// Retry is the queue's backoff policy. The zero value means
	// DefaultRetryPolicy; otherwise a zero Base or Cap takes the default's and
	// Jitter is used as given.
	Retry RetryPolicy
	// SweepInterval is how often the sweeper requeues expired leases; default 1 s.
	SweepInterval time.Duration
	// DisableSweeper turns the background sweeper off (Queue.Sweep still works).
	DisableSweeper bool
	// WakePollInterval bounds how late a waiting claim sees a task enqueued by
	// another process; default 20 ms. Enqueues in the same process wake it at once.
	WakePollInterval time.Duration
	// MaxBatch caps how many concurrent operations one transaction commits; default 512.
	MaxBatch int
}

// DefaultPragmas are applied to every connection; Options.Pragmas override them.
var DefaultPragmas = map[string]string{
	"journal_mode":       "WAL",
	"synchronous":        "NORMAL",
	"busy_timeout":       "5000",
	"wal_autocheckpoint": "1000",
	"cache_size":         "-20000",
	"foreign_keys":       "ON",
	"temp_store":         "MEMORY",
	"mmap_size":          "134217728",
}

// Defaults of Options.
const (
	DefaultMaxPayloadBytes  = 1 << 20
	DefaultLease            = 60 * time.Second
	DefaultSweepInterval    = time.Second
	DefaultWakePollInterval = 20 * time.Millisecond
	defaultMaxBatch         = 512
)

// EnvDBPath names the environment variable that sets the default database path.
const EnvDBPath = "PRISMQ_QUEUE_DB_PATH"

// DefaultPath returns PRISMQ_QUEUE_DB_PATH when set, else
// C:\Data\PrismQ\queue\queue.db on Windows, else a per-user data directory:
// $XDG_DATA_HOME/prismq/queue/queue.db (~/.local/share/...) on Linux,
// ~/Library/Application Support/PrismQ/queue/queue.db on macOS.
func DefaultPath() string {
	if p := os.Getenv(EnvDBPath); p != "" {
		return p
	}
	switch runtime.GOOS {
	case "windows":
		return `C:\Data\PrismQ\queue\queue.db`
	case "darwin":
		home, _ := os.UserHomeDir()
		return filepath.Join(home, "Library", "Application Support", "PrismQ", "queue", "queue.db")
	}
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil || home == "" {
			home = os.TempDir()
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "prismq", "queue", "queue.db")
}

func (o Options) withDefaults() (Options, error) {
	if o.Path == "" {
		o.Path = DefaultPath()
	}
	if strings.ContainsRune(o.Path, 0) {
		return o, invalidf("database path contains a NUL byte")
	}
	if strings.HasPrefix(o.Path, "file:") || o.Path == ":memory:" {
		return o, invalidf("database path must be a file path, not a URI or :memory: (%q)", o.Path)
	}
	if o.Clock == nil {
		o.Clock = SystemClock
	}
	if o.MaxPayloadBytes < 0 {
		return o, invalidf("max payload bytes must be >= 0, got %d", o.MaxPayloadBytes)
	}
	if o.MaxPayloadBytes == 0 {
		o.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if o.DefaultLease < 0 || o.SweepInterval < 0 || o.WakePollInterval < 0 {
		return o, invalidf("durations must be >= 0")
	}
	if o.DefaultLease == 0 {
		o.DefaultLease = DefaultLease
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.WakePollInterval == 0 {
		o.WakePollInterval = DefaultWakePollInterval
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = defaultMaxBatch
	}
	if o.Retry.Jitter < 0 || o.Retry.Jitter > 1 || o.Retry.Base < 0 || o.Retry.Cap < 0 {
		return o, invalidf("retry policy: base and cap must be >= 0 and jitter in [0, 1]")
	}
	if o.Retry == (RetryPolicy{}) {
		o.Retry = DefaultRetryPolicy
	}
	o.Retry = o.Retry.withDefaults()
	merged := make(map[string]string, len(DefaultPragmas))
	for k, v := range DefaultPragmas {
		merged[k] = v
	}
	for k, v := range o.Pragmas {
		k = strings.ToLower(strings.TrimSpace(k))
		if !isIdent(k) || !isPragmaValue(v) {
			return o, invalidf("pragma %q = %q is not a valid name and value", k, v)
		}
		merged[k] = v
	}
	o.Pragmas = merged
	return o, nil
}

// busyTimeout is the busy_timeout pragma (milliseconds) as a duration; 0
// when it is not a number.
func (o Options) busyTimeout() time.Duration {
	bt, _ := time.ParseDuration(o.Pragmas["busy_timeout"] + "ms")
	return bt
}

// pragmaList returns the pragmas in a stable order: busy_timeout first, so
// that the rest (journal_mode=WAL needs a lock on a new file that other
// processes may be opening too) wait for locks, then journal_mode, so that
// the others apply to a WAL database.
func (o Options) pragmaList() []string {
	first := []string{"busy_timeout", "journal_mode"}
	names := make([]string, 0, len(o.Pragmas))
	for k := range o.Pragmas {
		if k != first[0] && k != first[1] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	out := make([]string, 0, len(names)+2)
	for _, k := range append(first, names...) {
		if v, ok := o.Pragmas[k]; ok {
			out = append(out, fmt.Sprintf("%s=%s", k, v))
		}
	}
	return out
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func isPragmaValue(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
