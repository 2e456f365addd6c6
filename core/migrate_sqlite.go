package core

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order. File names
// are NNNN_name.sql.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, name, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: strings.TrimSuffix(name, ".sql"), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// LatestSchemaVersion is the schema version this library creates.
func LatestSchemaVersion() int {
	m, err := migrations()
	if err != nil || len(m) == 0 {
		return 0
	}
	return m[len(m)-1].version
}

// migrate brings the database to version target (0 = latest) in one
// IMMEDIATE transaction, so that processes opening a new file at the same
// time apply each migration once. A database newer than the library gives ErrSchema.
func (s *sqliteStore) migrate(ctx context.Context, target int, now time.Time) error {
	all, err := migrations()
	if err != nil {
		return fmt.Errorf("%w: read migrations: %v", ErrSchema, err)
	}
	latest := all[len(all)-1].version
	if target <= 0 || target > latest {
		target = latest
	}
	tx, err := s.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = s.rollback(tx)
		}
	}()
	if _, err := s.wconn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`); err != nil {
		return mapSQLiteErr(fmt.Errorf("migrate: %w", err))
	}
	var current int
	if err := s.wconn.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return mapSQLiteErr(fmt.Errorf("migrate: %w", err))
	}
	if current > latest {
		return fmt.Errorf("%w: database schema version %d is newer than this library's %d; upgrade prismq-queue",
			ErrSchema, current, latest)
	}
	for _, m := range all {
		if m.version <= current || m.version > target {
			continue
		}
		if _, err := s.wconn.ExecContext(ctx, m.sql); err != nil {
			return mapSQLiteErr(fmt.Errorf("migrate to %d (%s): %w", m.version, m.name, err))
		}
		if _, err := s.wconn.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.version, m.name, toMillis(now)); err != nil {
			return mapSQLiteErr(fmt.Errorf("migrate: %w", err))
		}
	}
	done = true
	s.schema = max(current, target)
	if err := s.commit(tx); err != nil {
		return err
	}
	if current == 0 {
		// A new database: switch it to incremental auto-vacuum (best effort;
		// Doctor reports a database without it).
		_ = s.enableIncrementalVacuum(ctx)
	}
	return nil
}
