package ingest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"duckgate/tenant"
)

// internalTablePrefix marks duckgate's own tables in a tenant database; they
// are not counted (package query hides them too).
const internalTablePrefix = "_duckgate"

// statsWorkers is how many tenant databases GET /api/admin/tenants counts
// at once: enough to hide open latency, few enough to leave the pool's
// slots to ingestion.
const statsWorkers = 4

// TenantInfo is a tenant as the admin API shows it.
type TenantInfo struct {
	tenant.Tenant
	// Tables is the number of the tenant's tables.
	Tables int `json:"tables"`
	// Rows is the exact number of rows in all its tables.
	Rows int64 `json:"rows"`
	// BytesOnDisk is the size of its database file and write-ahead log.
	BytesOnDisk int64 `json:"bytes_on_disk"`
	// LastIngest is the last accepted insert since the server started;
	// null if none.
	LastIngest *time.Time `json:"last_ingest"`
	// StatsError says why tables and rows could not be counted.
	StatsError string `json:"stats_error,omitempty"`
}

// tableStats are a tenant's counted tables and rows, valid while its files
// keep the signature sig.
type tableStats struct {
	sig    fileSig
	valid  bool
	tables int
	rows   int64
}

// fileSig changes whenever DuckDB commits to the database: a commit grows or
// rewrites the write-ahead log, a checkpoint rewrites the file.
type fileSig struct {
	dbSize, dbMod, walSize, walMod int64
}

func statFile(path string) (size, mod int64, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	return fi.Size(), fi.ModTime().UnixNano(), nil
}

// info returns t with its table and row counts, bytes on disk and last
// ingest. Counts are cached per tenant and recounted only when the database
// files changed, so listing many idle tenants does not reopen them.
func (s *Server) info(ctx context.Context, t tenant.Tenant) TenantInfo {
	ti := TenantInfo{Tenant: t}
	if st := s.states.peek(t.ID); st != nil {
		if ns := st.lastIngest.Load(); ns != 0 {
			at := time.Unix(0, ns).UTC()
			ti.LastIngest = &at
		}
	}
	pool := s.cfg.Pool
	if pool == nil {
		ti.StatsError = "the server has no tenant database pool configured"
		return ti
	}
	var sig fileSig
	var err1, err2 error
	path := pool.Path(t.ID)
	sig.dbSize, sig.dbMod, err1 = statFile(path)
	sig.walSize, sig.walMod, err2 = statFile(path + ".wal")
	if err := errors.Join(err1, err2); err != nil {
		ti.StatsError = err.Error()
		return ti
	}
	ti.BytesOnDisk = sig.dbSize + sig.walSize
	if sig.dbMod == 0 { // never written: do not create the file by opening it
		return ti
	}
	st := s.states.get(t.ID)
	st.statsMu.Lock()
	defer st.statsMu.Unlock()
	if !st.stats.valid || st.stats.sig != sig {
		tables, rows, err := s.countRows(ctx, t.ID)
		if err != nil {
			ti.StatsError = err.Error()
			return ti
		}
		st.stats = tableStats{sig: sig, valid: true, tables: tables, rows: rows}
	}
	ti.Tables, ti.Rows = st.stats.tables, st.stats.rows
	return ti
}

// countRows counts the tenant's tables and their rows exactly, in one
// read-only transaction of its pooled database.
func (s *Server) countRows(ctx context.Context, tenantID string) (int, int64, error) {
	h, err := s.cfg.Pool.Acquire(ctx, tenantID)
	if err != nil {
		return 0, 0, err
	}
	defer h.Release()
	tx, err := h.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("count rows: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	rs, err := tx.QueryContext(ctx, `SELECT table_name FROM duckdb_tables()
		WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal AND NOT temporary
		ORDER BY table_name`)
	if err != nil {
		return 0, 0, fmt.Errorf("list tables: %w", err)
	}
	var names []string
	for rs.Next() {
		var n string
		if err := rs.Scan(&n); err != nil {
			rs.Close()
			return 0, 0, fmt.Errorf("list tables: %w", err)
		}
		if !strings.HasPrefix(n, internalTablePrefix) {
			names = append(names, n)
		}
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return 0, 0, fmt.Errorf("list tables: %w", err)
	}
	if len(names) == 0 {
		return 0, 0, nil
	}
	var q strings.Builder
	q.WriteString("SELECT ")
	for i, n := range names {
		if i > 0 {
			q.WriteString(" + ")
		}
		q.WriteString(`(SELECT count(*) FROM main."` + strings.ReplaceAll(n, `"`, `""`) + `")`)
	}
	var rows int64
	if err := tx.QueryRowContext(ctx, q.String()).Scan(&rows); err != nil {
		return 0, 0, fmt.Errorf("count rows: %w", err)
	}
	return len(names), rows, nil
}

// infos returns the info of each tenant, counting up to statsWorkers
// databases at once.
func (s *Server) infos(ctx context.Context, ts []tenant.Tenant) []TenantInfo {
	out := make([]TenantInfo, len(ts))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(statsWorkers, len(ts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = s.info(ctx, ts[i])
			}
		}()
	}
	for i := range ts {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}
