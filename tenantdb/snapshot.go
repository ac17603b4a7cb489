package tenantdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"duckgate/schema"
)

// snapshotPrefix starts the file name of every snapshot copy, so that New
// can tell the copies a crash left in the scratch directories from the
// other files there (Parquet exports, share snapshots).
const snapshotPrefix = ".snapshot-"

// Size is the bytes the tenant's database takes on disk: its file and its
// write-ahead log. A tenant that never stored a row has size 0.
func (p *Pool) Size(tenantID string) (int64, error) {
	var n int64
	path := p.Path(tenantID)
	for _, f := range []string{path, path + ".wal"} {
		fi, err := os.Stat(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		n += fi.Size()
	}
	return n, nil
}

// Exists reports whether the tenant has a database file, without opening
// (and so creating) it.
func (p *Pool) Exists(tenantID string) bool {
	_, err := os.Stat(p.Path(tenantID))
	return err == nil
}

// Snapshot writes a consistent copy of the tenant's database to a new
// DuckDB file inside the tenant's scratch directory, and returns its path
// (the file is named after name, with a prefix of its own). The copy is made by the tenant's own open database (ATTACH the
// new file, COPY FROM DATABASE, DETACH), so it is one transaction's view and
// the live file is never opened a second time: two DuckDB instances on one
// file in one process are unsafe, since the file lock is per process. The
// caller owns the returned file: move it out of the scratch directory or
// delete it. A copy still in the scratch directory when the process stops
// (a crash mid-query) is deleted by the next New.
func (p *Pool) Snapshot(ctx context.Context, tenantID, name string) (string, error) {
	return p.copyInto(ctx, tenantID, name, func(conn *sql.Conn, src, alias string) error {
		_, err := conn.ExecContext(ctx, `COPY FROM DATABASE `+schema.QuoteIdent(src)+` TO `+alias)
		return err
	})
}

// copyInto makes a new DuckDB file in the tenant's scratch directory
// (named after name, with the snapshot prefix), attaches it to the
// tenant's open database as alias, has fill copy into it on a connection
// whose database is src, and detaches it. On error the file is removed.
func (p *Pool) copyInto(ctx context.Context, tenantID, name string, fill func(conn *sql.Conn, src, alias string) error) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\'"`) || !strings.HasSuffix(name, ".duckdb") {
		return "", fmt.Errorf("snapshot of tenant %s: bad file name %q", tenantID, name)
	}
	h, err := p.Acquire(ctx, tenantID)
	if err != nil {
		return "", err
	}
	defer h.Release()
	dst := filepath.Join(p.ScratchDir(tenantID), snapshotPrefix+name)
	conn, err := h.DB.Conn(ctx)
	if err != nil {
		return "", fmt.Errorf("snapshot of tenant %s: %w", tenantID, err)
	}
	defer conn.Close()
	var src string
	if err := conn.QueryRowContext(ctx, `SELECT current_database()`).Scan(&src); err != nil {
		return "", fmt.Errorf("snapshot of tenant %s: %w", tenantID, err)
	}
	const alias = "_duckgate_snapshot"
	if _, err := conn.ExecContext(ctx, `ATTACH `+schema.QuoteString(dst)+` AS `+alias); err != nil {
		return "", fmt.Errorf("snapshot of tenant %s: %w", tenantID, err)
	}
	err = fill(conn, src, alias)
	if _, derr := conn.ExecContext(context.Background(), `DETACH `+alias); derr != nil && err == nil {
		err = derr
	}
	if err != nil {
		_ = os.Remove(dst)
		_ = os.Remove(dst + ".wal")
		return "", fmt.Errorf("snapshot of tenant %s: %w", tenantID, err)
	}
	return dst, nil
}

// removeSnapshotLeftovers deletes the snapshot copies (and their DuckDB
// write-ahead logs) that a crash left in the tenants' scratch directories
// under dir. Nothing else in those directories is touched.
func removeSnapshotLeftovers(dir string) error {
	tenants, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("find snapshot leftovers: %w", err)
	}
	for _, t := range tenants {
		if !t.IsDir() || !strings.HasSuffix(t.Name(), ".scratch") {
			continue
		}
		scratch := filepath.Join(dir, t.Name())
		files, err := os.ReadDir(scratch)
		if err != nil {
			return fmt.Errorf("find snapshot leftovers: %w", err)
		}
		for _, f := range files {
			if !strings.HasPrefix(f.Name(), snapshotPrefix) {
				continue
			}
			// RemoveAll: a Parquet export is a directory.
			if err := os.RemoveAll(filepath.Join(scratch, f.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove snapshot leftover: %w", err)
			}
		}
	}
	return nil
}
