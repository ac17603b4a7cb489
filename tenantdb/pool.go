package tenantdb

import (
	"container/list"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	duckdb "github.com/duckdb/duckdb-go/v2"
	"go.uber.org/zap"

	"duckgate/schema"
)

// DefaultSingleThreadBelow is the default Config.SingleThreadBelow: about
// one of DuckDB's row groups (122,880 rows) of typical events, below which
// a scan has a single task.
const DefaultSingleThreadBelow = 8 << 20

// DefaultMaxOpen is the default Config.MaxOpen: 100 tenants ingesting at
// once keep their databases open (with 64, a third of them reopened a
// database for every flush, and their rows became visible seconds late).
// An idle open database costs a few MiB.
const DefaultMaxOpen = 128

// ErrClosed is returned by Acquire after Close.
var ErrClosed = errors.New("tenant database pool is closed")

// Limits are the DuckDB resource limits of one tenant's database.
type Limits struct {
	// MemoryLimit is DuckDB's memory_limit, e.g. "256MB". Empty means DuckDB's default.
	MemoryLimit string
	// Threads is DuckDB's threads setting. 0 means DuckDB's default.
	Threads int
}

// Config configures a Pool.
type Config struct {
	// Dir holds the tenant databases, one <tenant_id>.duckdb file each.
	Dir string
	// MaxOpen is the number of databases kept open at once; when a new one
	// is needed the least recently used idle one is closed. 0 means
	// DefaultMaxOpen.
	MaxOpen int
	// LimitsOf returns the limits for a tenant's database when it is opened.
	// Nil means DuckDB's defaults.
	LimitsOf func(tenantID string) Limits
	// SingleThreadBelow: a database whose file is smaller than this when it
	// opens gets one DuckDB thread, whatever its limits say. Its tables fit
	// in a few row groups, so a second thread cannot share a scan; it only
	// costs wake-ups and task-queue locking: measured with the 100-tenant
	// monthly-revenue query (50,000 rows, 3 MB file), 2.65 ms of process
	// CPU per query with one thread against 3.5 ms with two. A database that grows
	// past it gets its limits' threads when it is next opened. Default
	// DefaultSingleThreadBelow; negative turns it off.
	SingleThreadBelow int64
	// Metrics is the set the pool registers its series on; nil skips them.
	Metrics *metrics.Set
}

// Pool hands out the open database of a tenant, opening it on demand.
type Pool struct {
	cfg Config
	log *zap.Logger

	free sync.Map // tenant id → freeNote: free space inside its file (usage.go)

	mu     sync.Mutex
	open   map[string]*entry // guarded by mu
	lru    *list.List        // of *entry, front = most recently used; guarded by mu
	closed bool              // guarded by mu
	// room is closed, and replaced by a new channel, whenever an entry
	// leaves the pool or becomes idle: Acquire calls waiting for room and
	// Evict calls waiting for a release select on it with their deadline.
	// Guarded by mu.
	room chan struct{}
}

type entry struct {
	tenant string
	refs   int           // guarded by Pool.mu
	elem   *list.Element // guarded by Pool.mu
	ready  chan struct{} // closed once db/err are set
	db     *sql.DB
	err    error
}

// Handle is a tenant's open database, valid until Release.
type Handle struct {
	// DB is the tenant's database. Do not Close it; call Release.
	DB *sql.DB

	p    *Pool
	e    *entry
	once sync.Once
}

// Release returns the handle to the pool. The database may be closed once no
// handle refers to it.
func (h *Handle) Release() {
	h.once.Do(func() { h.p.release(h.e) })
}

// New returns a pool over cfg.Dir. It creates the directory if needed.
func New(cfg Config, log *zap.Logger) (*Pool, error) {
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = DefaultMaxOpen
	}
	if cfg.SingleThreadBelow == 0 {
		cfg.SingleThreadBelow = DefaultSingleThreadBelow
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create tenant database directory: %w", err)
	}
	if err := removeSnapshotLeftovers(cfg.Dir); err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, log: log, open: make(map[string]*entry), lru: list.New(), room: make(chan struct{})}
	if cfg.Metrics != nil {
		cfg.Metrics.NewGauge("duckgate_tenant_databases_open", func() float64 { return float64(p.OpenCount()) })
		cfg.Metrics.RegisterMetricsWriter(writeMemoryMetrics)
	}
	return p, nil
}

// ScratchDir is the only directory a tenant's database may write files to:
// Parquet exports and share snapshots. It is removed with the tenant.
func (p *Pool) ScratchDir(tenantID string) string {
	return filepath.Join(p.cfg.Dir, tenantID+".scratch")
}

// Path is the file of a tenant's database.
func (p *Pool) Path(tenantID string) string {
	return filepath.Join(p.cfg.Dir, tenantID+".duckdb")
}

// Acquire returns the tenant's open database, opening it if needed. When
// MaxOpen databases are open and all are in use, it waits until one is
// released, so that no more than MaxOpen are ever open, or until ctx ends:
// a query's timeout covers its wait for a slot.
func (p *Pool) Acquire(ctx context.Context, tenantID string) (*Handle, error) {
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if _, ok := p.open[tenantID]; ok || len(p.open) < p.cfg.MaxOpen || p.hasIdleLocked() {
			break
		}
		room := p.room
		p.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for a database slot for tenant %s: %w", tenantID, ctx.Err())
		}
		p.mu.Lock()
	}
	e, ok := p.open[tenantID]
	if ok {
		e.refs++
		p.lru.MoveToFront(e.elem)
		p.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			p.release(e)
			return nil, fmt.Errorf("wait for the database of tenant %s to open: %w", tenantID, ctx.Err())
		}
		if e.err != nil {
			p.release(e)
			return nil, e.err
		}
		return &Handle{DB: e.db, p: p, e: e}, nil
	}
	e = &entry{tenant: tenantID, refs: 1, ready: make(chan struct{})}
	e.elem = p.lru.PushFront(e)
	p.open[tenantID] = e
	victims := p.evictLocked()
	p.mu.Unlock()

	for _, v := range victims {
		p.closeEntry(v)
	}
	e.db, e.err = p.openDB(tenantID)
	close(e.ready)
	if e.err != nil {
		p.mu.Lock()
		if p.open[tenantID] == e {
			delete(p.open, tenantID)
			p.lru.Remove(e.elem)
		}
		p.broadcastLocked()
		p.mu.Unlock()
		return nil, e.err
	}
	return &Handle{DB: e.db, p: p, e: e}, nil
}

// hasIdleLocked reports whether an open entry is idle, so that evictLocked
// can make room.
func (p *Pool) hasIdleLocked() bool {
	for el := p.lru.Back(); el != nil; el = el.Prev() {
		if el.Value.(*entry).refs == 0 {
			return true
		}
	}
	return false
}

// evictLocked removes idle entries beyond MaxOpen from the pool and returns
// them for closing outside the lock.
func (p *Pool) evictLocked() []*entry {
	var victims []*entry
	for el := p.lru.Back(); el != nil && len(p.open) > p.cfg.MaxOpen; {
		prev := el.Prev()
		if v := el.Value.(*entry); v.refs == 0 {
			delete(p.open, v.tenant)
			p.lru.Remove(el)
			victims = append(victims, v)
		}
		el = prev
	}
	return victims
}

func (p *Pool) release(e *entry) {
	p.mu.Lock()
	e.refs--
	var victims []*entry
	if e.refs == 0 && len(p.open) > p.cfg.MaxOpen {
		victims = p.evictLocked()
	}
	if e.refs == 0 {
		p.broadcastLocked()
	}
	p.mu.Unlock()
	for _, v := range victims {
		p.closeEntry(v)
	}
}

// broadcastLocked wakes every Acquire and Evict waiting for room or a
// release.
func (p *Pool) broadcastLocked() {
	close(p.room)
	p.room = make(chan struct{})
}

func (p *Pool) closeEntry(e *entry) {
	<-e.ready
	if e.db == nil {
		return
	}
	if err := e.db.Close(); err != nil {
		p.log.Warn("close tenant database", zap.String("tenant", e.tenant), zap.Error(err))
	}
}

// OpenCount is the number of databases open now.
func (p *Pool) OpenCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.open)
}

// Cold reports whether using the tenant's database now would cost an open
// and, the pool being full, a close of another one: callers with work that
// can wait let it grow instead.
func (p *Pool) Cold(tenantID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, open := p.open[tenantID]
	return !open && len(p.open) >= p.cfg.MaxOpen
}

// Evict closes the tenant's database once nobody holds it, so that the next
// Acquire reopens it with fresh limits. It waits up to timeout for handles to
// be released.
func (p *Pool) Evict(tenantID string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	p.mu.Lock()
	for {
		e, ok := p.open[tenantID]
		if !ok {
			p.mu.Unlock()
			return nil
		}
		if e.refs == 0 {
			delete(p.open, tenantID)
			p.lru.Remove(e.elem)
			p.broadcastLocked()
			p.mu.Unlock()
			p.closeEntry(e)
			return nil
		}
		released := p.room
		p.mu.Unlock()
		select {
		case <-released:
		case <-deadline.C:
			return fmt.Errorf("evict tenant %s: database still in use after %s", tenantID, timeout)
		}
		p.mu.Lock()
	}
}

// Remove closes the tenant's database and deletes its files.
func (p *Pool) Remove(tenantID string, timeout time.Duration) error {
	if err := p.Evict(tenantID, timeout); err != nil {
		return err
	}
	path := p.Path(tenantID)
	for _, f := range []string{path, path + ".wal", path + ".tmp", p.ScratchDir(tenantID)} {
		if err := os.RemoveAll(f); err != nil {
			return fmt.Errorf("remove %s: %w", f, err)
		}
	}
	return nil
}

// Close closes every open database. Handles still held become unusable.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	entries := make([]*entry, 0, len(p.open))
	for _, e := range p.open {
		entries = append(entries, e)
	}
	p.open = make(map[string]*entry)
	p.lru.Init()
	p.broadcastLocked()
	p.mu.Unlock()
	var errs []error
	for _, e := range entries {
		<-e.ready
		if e.db != nil {
			if err := e.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close tenant %s: %w", e.tenant, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (p *Pool) openDB(tenantID string) (*sql.DB, error) {
	var lim Limits
	if p.cfg.LimitsOf != nil {
		lim = p.cfg.LimitsOf(tenantID)
	}
	if lim.Threads != 1 && p.small(tenantID) {
		lim.Threads = 1
	}
	c, err := duckdb.NewConnector(p.Path(tenantID)+"?"+sandboxDSN(lim).Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("open database of tenant %s: %w", tenantID, err)
	}
	db := sql.OpenDB(c)
	scratch := p.ScratchDir(tenantID)
	if err := os.MkdirAll(scratch, 0o750); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open database of tenant %s: %w", tenantID, err)
	}
	// allowed_directories and TimeZone cannot be set through the DSN. The
	// scratch directory is the one place the tenant's database may write
	// files (Parquet exports, share snapshots); DuckDB normalises paths, so
	// "scratch/../x" is refused. The lock goes last so that nothing after it
	// can change a setting.
	sandbox := "SET GLOBAL allowed_directories = [" + schema.QuoteString(scratch+string(filepath.Separator)) + "];" +
		"SET GLOBAL enable_external_access = false;" +
		"SET GLOBAL TimeZone = 'UTC';" +
		"SET GLOBAL lock_configuration = true"
	if _, err := db.ExecContext(context.Background(), sandbox); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open database of tenant %s: %w", tenantID, err)
	}
	return db, nil
}

// small reports whether the tenant's database file is under
// Config.SingleThreadBelow (a file not made yet is).
func (p *Pool) small(tenantID string) bool {
	if p.cfg.SingleThreadBelow < 0 {
		return false
	}
	st, err := os.Stat(p.Path(tenantID))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	return st.Size() < p.cfg.SingleThreadBelow
}

// sandboxDSN returns the DuckDB configuration a tenant database is opened
// with: its limits, and no extension may be installed or loaded (JSON,
// Parquet and ICU are built in). openDB then turns external access off
// (read_csv('/etc/passwd'), COPY TO, ATTACH all fail inside DuckDB, except
// in the tenant's scratch directory) and locks the configuration, so no
// SET/RESET can undo it.
func sandboxDSN(lim Limits) url.Values {
	v := url.Values{}
	if lim.MemoryLimit != "" {
		v.Set("memory_limit", lim.MemoryLimit)
	}
	if lim.Threads > 0 {
		v.Set("threads", strconv.Itoa(lim.Threads))
	}
	v.Set("autoinstall_known_extensions", "false")
	v.Set("autoload_known_extensions", "false")
	v.Set("allow_community_extensions", "false")
	return v
}
