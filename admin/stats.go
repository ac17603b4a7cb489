package admin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"duckgate/tenant"
	"duckgate/tenantdb"
)

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
	// RowsPerSecond is the tenant's ingest rate over the last hour since
	// the server started, one point a minute, oldest first; empty if it
	// sent nothing.
	RowsPerSecond []float64 `json:"rows_per_s"`
	// Quarantined is the number of rows in the tenant's quarantine table
	// (batcher.QuarantineTable): rows of batches that kept failing.
	Quarantined int64 `json:"quarantined_rows"`
	// StatsError says why tables and rows could not be counted.
	StatsError string `json:"stats_error,omitempty"`
}

// statsCache is a tenant's last counted tables and rows.
type statsCache struct {
	mu    sync.Mutex
	stats tableStats // guarded by mu
}

// tableStats are a tenant's counted tables and rows, valid while its files
// keep the signature sig.
type tableStats struct {
	sig         fileSig
	valid       bool
	tables      int
	rows        int64
	quarantined int64
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
func (h *Handler) info(ctx context.Context, t tenant.Tenant) TenantInfo {
	ti := TenantInfo{Tenant: t, RowsPerSecond: []float64{}}
	if at, ok := h.cfg.Ingest.LastIngest(t.ID); ok {
		ti.LastIngest = &at
	}
	if h.rates != nil {
		if ps := h.rates.of(t.ID); ps != nil {
			ti.RowsPerSecond = ps
		}
	}
	pool := h.cfg.Pool
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
	v, _ := h.stats.LoadOrStore(t.ID, &statsCache{})
	st := v.(*statsCache)
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.stats.valid || st.stats.sig != sig {
		tables, rows, quarantined, err := h.countRows(ctx, t.ID)
		if err != nil {
			ti.StatsError = err.Error()
			return ti
		}
		st.stats = tableStats{sig: sig, valid: true, tables: tables, rows: rows, quarantined: quarantined}
	}
	ti.Tables, ti.Rows, ti.Quarantined = st.stats.tables, st.stats.rows, st.stats.quarantined
	return ti
}

// countRows counts the tenant's tables and their rows exactly, and its
// quarantined rows, in one read-only transaction of its pooled database.
func (h *Handler) countRows(ctx context.Context, tenantID string) (tables int, rows, quarantined int64, err error) {
	db, err := h.cfg.Pool.Acquire(ctx, tenantID)
	if err != nil {
		return 0, 0, 0, err
	}
	defer db.Release()
	tx, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("count rows: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	ts, err := tenantdb.Tables(ctx, tx)
	if err != nil {
		return 0, 0, 0, err
	}
	for _, t := range ts {
		rows += t.Rows
	}
	quarantined, err = quarantinedRows(ctx, tx)
	if err != nil {
		return 0, 0, 0, err
	}
	return len(ts), rows, quarantined, nil
}

// infos returns the info of each tenant, counting up to statsWorkers
// databases at once.
func (h *Handler) infos(ctx context.Context, ts []tenant.Tenant) []TenantInfo {
	out := make([]TenantInfo, len(ts))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(statsWorkers, len(ts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = h.info(ctx, ts[i])
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
