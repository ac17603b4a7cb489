package query

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"
	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"
)

// CacheConfig bounds the result cache of HandleQuery (see Versioner). The
// cache is off unless MaxBytes > 0 and Config.Versions is set.
type CacheConfig struct {
	// MaxBytes is the most bytes of encoded results kept, all tenants
	// together. 0 turns the cache off.
	MaxBytes int64
	// MaxTenantBytes is the most one tenant's results hold. Default
	// MaxBytes/8.
	MaxTenantBytes int64
	// MaxEntryBytes is the largest result kept; larger ones stream as
	// before and are not kept. Default 1 MiB (at most MaxTenantBytes).
	MaxEntryBytes int64
}

// Versioner gives a tenant's data version: a number that changes, to one
// never given before, after every transaction that may have changed what
// the tenant's database holds (the batcher bumps it after each commit,
// failed ones included). A cached result is served only while the version
// it was computed under is still the tenant's version, so it is exactly what
// DuckDB would answer now.
type Versioner interface {
	DataVersion(tenantID string) uint64
}

// DefaultCacheBytes is the default CacheConfig.MaxBytes of the server
// (its -query.cache-bytes flag).
const DefaultCacheBytes = 128 << 20

// CacheHeader is the response header that says whether a query's answer came
// from the result cache: "hit" or "miss" (absent when the cache is off).
const CacheHeader = "X-Duckgate-Cache"

// resultCache keeps encoded query results, bounded per tenant and in total,
// least recently used first out. It never holds a lock across I/O.
type resultCache struct {
	cfg CacheConfig

	mu      sync.Mutex
	entries map[string]*cacheEntry  // by key; guarded by mu
	tenants map[string]*cacheTenant // guarded by mu; an entry lives while it holds results
	lru     *list.List              // of *cacheEntry, front = most recently used; guarded by mu
	bytes   int64                   // guarded by mu

	hits, misses, stores *metrics.Counter
}

type cacheTenant struct {
	version uint64     // the version its entries were computed under
	lru     *list.List // of *cacheEntry, front = most recently used
	bytes   int64
}

type cacheEntry struct {
	key       string
	tenant    string
	body      []byte // never changed once stored
	elem      *list.Element
	tenantElm *list.Element
}

// cacheOverhead is what an entry costs besides its body and key.
const cacheOverhead = 256

func (e *cacheEntry) size() int64 { return int64(len(e.body)+len(e.key)) + cacheOverhead }

func newResultCache(cfg CacheConfig, set *metrics.Set) *resultCache {
	if cfg.MaxTenantBytes <= 0 {
		cfg.MaxTenantBytes = max(cfg.MaxBytes/8, 1)
	}
	cfg.MaxTenantBytes = min(cfg.MaxTenantBytes, cfg.MaxBytes)
	if cfg.MaxEntryBytes <= 0 {
		cfg.MaxEntryBytes = 1 << 20
	}
	cfg.MaxEntryBytes = min(cfg.MaxEntryBytes, cfg.MaxTenantBytes-cacheOverhead)
	c := &resultCache{cfg: cfg, entries: make(map[string]*cacheEntry), tenants: make(map[string]*cacheTenant), lru: list.New()}
	c.hits = set.NewCounter("duckgate_query_cache_hits_total")
	c.misses = set.NewCounter("duckgate_query_cache_misses_total")
	c.stores = set.NewCounter("duckgate_query_cache_stores_total")
	set.NewGauge("duckgate_query_cache_bytes", func() float64 { c.mu.Lock(); defer c.mu.Unlock(); return float64(c.bytes) })
	return c
}

// cacheKey is the key of a request's result: tenant, format, params and
// SQL text, each length-prefixed so that no two requests share a key. ok
// is false when the result must not be cached: the SQL may give another
// answer for the same data (see volatileSQL), or the params cannot be
// written down.
func cacheKey(tenantID string, req Request) (key string, ok bool) {
	if req.Format == FormatParquet || volatileSQL(req.SQL) {
		return "", false
	}
	params := []byte("null")
	if len(req.Params) > 0 {
		var err error
		if params, err = json.Marshal(req.Params); err != nil {
			return "", false
		}
	}
	var b strings.Builder
	b.Grow(len(tenantID) + len(params) + len(req.SQL) + 40)
	for _, s := range []string{tenantID, string(req.Format.ContentType()), string(params), req.SQL} {
		fmt.Fprintf(&b, "%d:", len(s))
		b.WriteString(s)
	}
	return b.String(), true
}

// uncacheableWords are pieces of SQL text whose presence makes a result
// uncacheable, matched in the lower-cased text (so also inside longer
// words, comments and strings: a false match only costs a cache miss).
// They cover every function DuckDB marks other than CONSISTENT (time,
// randomness, connection and query identity: TestVolatileFunctionsCovered
// checks this against duckdb_functions()), DuckDB's macros calling them,
// the SQL keywords that read the clock (current_timestamp, localtime),
// sampling (USING SAMPLE, TABLESAMPLE, reservoir), time zone listings whose
// offsets follow the clock (pg_timezone_names), and DuckDB's catalog
// functions and views (duckdb_tables(), ...), which show object ids that a
// reopened database may number differently.
var uncacheableWords = []string{
	"now", "random", "uuid", "current", "today", "transaction_timestamp", "localtime", "txid", "nextval",
	"currval", "setseed", "sample", "ago", "pg_", "duckdb_", "oid", "sleep", "write_log", "stats",
	"search_path", "information_schema", "format_type",
}

// volatileSQL reports whether q may give a different answer over the same
// data (see uncacheableWords). It is conservative: the words are matched
// anywhere in the text.
func volatileSQL(q string) bool {
	lower := strings.ToLower(q)
	for _, w := range uncacheableWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// get returns the cached body of key if it was computed under version, the
// tenant's version now.
func (c *resultCache) get(tenantID, key string, version uint64) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenants[tenantID]
	if t == nil {
		c.misses.Inc()
		return nil
	}
	if t.version != version {
		c.dropTenantLocked(tenantID, t) // every entry is stale
		c.misses.Inc()
		return nil
	}
	e := c.entries[key]
	if e == nil {
		c.misses.Inc()
		return nil
	}
	c.lru.MoveToFront(e.elem)
	t.lru.MoveToFront(e.tenantElm)
	c.hits.Inc()
	return e.body
}

// put keeps body as key's result under version, evicting the least
// recently used results beyond the tenant's and the total bound. A result
// computed under an older version than the tenant's newest is not kept.
func (c *resultCache) put(tenantID, key string, version uint64, body []byte) {
	e := &cacheEntry{key: key, tenant: tenantID, body: body}
	if int64(len(body)) > c.cfg.MaxEntryBytes || e.size() > c.cfg.MaxTenantBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenants[tenantID]
	switch {
	case t == nil:
		t = &cacheTenant{version: version, lru: list.New()}
		c.tenants[tenantID] = t
	case version < t.version:
		return // computed before a commit the cache has already seen
	case version > t.version:
		c.dropTenantLocked(tenantID, t)
		t = &cacheTenant{version: version, lru: list.New()}
		c.tenants[tenantID] = t
	}
	if old := c.entries[key]; old != nil {
		c.removeLocked(old)
		if c.tenants[tenantID] == nil { // removing old emptied the tenant
			c.tenants[tenantID] = t
		}
	}
	e.elem = c.lru.PushFront(e)
	e.tenantElm = t.lru.PushFront(e)
	c.entries[key] = e
	t.bytes += e.size()
	c.bytes += e.size()
	c.stores.Inc()
	for t.bytes > c.cfg.MaxTenantBytes {
		c.removeLocked(t.lru.Back().Value.(*cacheEntry))
	}
	for c.bytes > c.cfg.MaxBytes {
		c.removeLocked(c.lru.Back().Value.(*cacheEntry))
	}
}

// removeLocked drops one entry; a tenant left without entries is forgotten.
func (c *resultCache) removeLocked(e *cacheEntry) {
	t := c.tenants[e.tenant]
	delete(c.entries, e.key)
	c.lru.Remove(e.elem)
	t.lru.Remove(e.tenantElm)
	t.bytes -= e.size()
	c.bytes -= e.size()
	if t.lru.Len() == 0 {
		delete(c.tenants, e.tenant)
	}
}

// dropTenantLocked drops every entry of the tenant.
func (c *resultCache) dropTenantLocked(tenantID string, t *cacheTenant) {
	for t.lru.Len() > 0 {
		c.removeLocked(t.lru.Back().Value.(*cacheEntry))
	}
	delete(c.tenants, tenantID)
}

// cacheFill is a result being computed for the cache.
type cacheFill struct {
	c        *resultCache
	versions Versioner
	tenant   string
	key      string
	version  uint64 // the tenant's version before the query ran
}

// wrap returns a body that sends what body sends and, if the whole result
// is sent without error and fits MaxEntryBytes, keeps a copy in the cache.
func (f *cacheFill) wrap(body io.Reader) io.Reader {
	return &teeBody{f: f, r: body}
}

// store keeps b if the tenant's data did not change while it was computed.
func (f *cacheFill) store(b []byte) {
	if f.versions.DataVersion(f.tenant) != f.version {
		return
	}
	f.c.put(f.tenant, f.key, f.version, bytes.Clone(b))
}

// teeBody is a response body stream that copies what it sends, up to the
// cache's entry bound, and stores the copy once the stream ends cleanly. A
// stream that fails (the result's error marker, a client gone) is never
// stored.
type teeBody struct {
	f    *cacheFill
	r    io.Reader
	buf  bytes.Buffer
	over bool // more than MaxEntryBytes: nothing is kept
}

func (t *teeBody) keep(p []byte) {
	if t.over {
		return
	}
	if int64(t.buf.Len()+len(p)) > t.f.c.cfg.MaxEntryBytes {
		t.over = true
		t.buf = bytes.Buffer{}
		return
	}
	t.buf.Write(p)
}

// SupportsBodyWriteTo lets fasthttp call WriteTo when the wrapped body
// allows it.
func (t *teeBody) SupportsBodyWriteTo() bool {
	bw, ok := t.r.(fasthttp.BodyWriterTo)
	return ok && bw.SupportsBodyWriteTo()
}

// WriteTo sends the wrapped body into w through the copy.
func (t *teeBody) WriteTo(w io.Writer) (int64, error) {
	n, err := t.r.(io.WriterTo).WriteTo(teeWriter{t: t, w: w})
	if err == nil && !t.over {
		t.f.store(t.buf.Bytes())
	}
	return n, err
}

// Read reads the wrapped body through the copy.
func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.keep(p[:n])
	if errors.Is(err, io.EOF) && !t.over {
		t.f.store(t.buf.Bytes())
		t.over = true // store once
	}
	return n, err
}

// Close closes the wrapped body.
func (t *teeBody) Close() error {
	if c, ok := t.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

type teeWriter struct {
	t *teeBody
	w io.Writer
}

func (tw teeWriter) Write(p []byte) (int, error) {
	n, err := tw.w.Write(p)
	tw.t.keep(p[:n])
	return n, err
}

// serveCached answers req from the cache if it can, and otherwise prepares
// req so that Stream fills the cache. It returns true when the response is
// written. With req.Flush the tenant's buffered rows are committed first (so
// the version read after it covers them) and req.Flush is cleared.
func (e *Engine) serveCached(ctx *fasthttp.RequestCtx, tenantID string, req *Request) (bool, error) {
	if e.cache == nil {
		return false, nil
	}
	key, ok := cacheKey(tenantID, *req)
	if !ok {
		ctx.Response.Header.Set(CacheHeader, "miss")
		return false, nil
	}
	if req.Flush && e.flusher != nil {
		fctx, cancel := context.WithTimeout(context.Background(), e.timeoutOf(*req))
		err := e.flusher.Flush(fctx, tenantID)
		if err != nil {
			err = wrapRunError(fctx, fmt.Errorf("flush buffered rows: %w", err))
		}
		cancel()
		if err != nil {
			return false, err
		}
		req.Flush = false
	}
	version := e.cfg.Versions.DataVersion(tenantID)
	if body := e.cache.get(tenantID, key, version); body != nil {
		setResultHeaders(ctx, req.Format, "")
		ctx.Response.Header.Set(CacheHeader, "hit")
		ctx.Response.SetBodyRaw(body) // body is never changed
		return true, nil
	}
	ctx.Response.Header.Set(CacheHeader, "miss")
	req.fill = &cacheFill{c: e.cache, versions: e.cfg.Versions, tenant: tenantID, key: key, version: version}
	return false, nil
}
