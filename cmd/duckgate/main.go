// Command duckgate is the realtime JSON ingestion gateway for DuckDB.
//
//	duckgate serve [flags]
//	duckgate tenant|key ...   (admin API client; see cli.go)
//
// main only wires: it parses flags, builds each package's Config, starts the
// server, waits for SIGINT/SIGTERM and stops everything in reverse order.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"duckgate/admin"
	"duckgate/api"
	"duckgate/batcher"
	"duckgate/cluster"
	"duckgate/cluster/kv"
	"duckgate/ingest"
	"duckgate/query"
	"duckgate/share"
	"duckgate/tenant"
	"duckgate/tenantdb"
	"duckgate/wal"
	"duckgate/webhook"
)

func main() {
	if len(os.Args) >= 2 && (os.Args[1] == "tenant" || os.Args[1] == "key") {
		os.Exit(runCLI(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
	}
	const usage = "usage:\n  duckgate serve [flags]        run the gateway (duckgate serve -h lists the flags)\n  duckgate tenant|key ...       manage a running server (duckgate tenant prints their usage)"
	if len(os.Args) >= 2 && (os.Args[1] == "-h" || os.Args[1] == "-help" || os.Args[1] == "--help" || os.Args[1] == "help") {
		fmt.Println(usage)
		os.Exit(0)
	}
	if len(os.Args) < 2 || os.Args[1] != "serve" {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err := serve(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "duckgate:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve HTTP on: host:port or http://host:port")
	dataDir := fs.String("data", "./data", "data directory: tenant registry, tenant databases, write-ahead log")
	adminKey := fs.String("admin-key", "", "admin API key (default $DUCKGATE_ADMIN_KEY; if neither is set, a random one is made on first start and printed once)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	plansFile := fs.String("plans", "", "JSON file of plans {\"free\":{\"memory_limit\":\"256MB\",\"threads\":2,...}}; default: built-in free, pro, enterprise")
	maxBody := bytesFlag(fs, "ingest.max-body", 64<<20, "largest insert body in bytes, after gzip decompression; larger gets 413")
	waitTimeout := fs.Duration("ingest.wait-timeout", 30*time.Second, "how long an insert with ?wait=true waits for its commit before 504")
	flushRows := fs.Int("batcher.flush-rows", 100_000, "flush a table's buffer at this many rows")
	flushBytes := bytesFlag(fs, "batcher.flush-bytes", 32<<20, "flush a table's buffer at this many bytes")
	flushInterval := fs.Duration("batcher.flush-interval", time.Second, "flush a table's buffer when its oldest row is this old: the visibility delay")
	minFlush := fs.Duration("batcher.min-flush-interval", 0, "flush a small buffer (under a tenth of -batcher.flush-rows and -batcher.flush-bytes) this soon while the flushes are not busy, growing towards -batcher.flush-interval as they get busy: the visibility delay at a modest rate; 0 means a tenth of -batcher.flush-interval, negative turns it off")
	coldFlush := fs.Duration("batcher.cold-flush-interval", 5*time.Second, "flush interval of a tenant whose database is closed while -tenantdb.max-open are open: fewer, larger batches instead of reopening databases every second")
	maxFlushes := fs.Int("batcher.max-flushes", 4*runtime.NumCPU(), "flushes running at once across all tenants")
	sweepInterval := fs.Duration("batcher.retention-interval", 10*time.Minute, "how often each tenant's expired rows are deleted (plan and table retention); a row outlives its retention by at most this")
	maxBuffered := bytesFlag(fs, "batcher.max-buffered", 1<<30, "bytes of rows buffered across all tenants before inserts get 503")
	maxColumns := fs.Int("batcher.max-columns", 1000, "columns per table; further keys go to the _overflow JSON column")
	queryTimeout := fs.Duration("query.timeout", query.DefaultTimeout, "longest a query may run; a request may ask for less with timeout=<seconds>")
	queryMaxRows := fs.Int64("query.max-rows", query.DefaultMaxRows, "most rows one query result may have")
	queryMaxBytes := bytesFlag(fs, "query.max-bytes", query.DefaultMaxBytes, "most bytes one encoded query result may have")
	queryMaxSQL := bytesFlag(fs, "query.max-sql", query.DefaultMaxSQLBytes, "longest SQL text of a query or share link, e.g. 1MiB (the default); longer is 413. "+
		"It bounds the time DuckDB spends parsing and planning, which a timeout cannot interrupt at once: a 1 MiB IN list takes about 2 s on 2 cores, a 4 MiB one 14 s")
	queryExecuting := fs.Int("query.max-executing", 2*runtime.NumCPU(), "queries DuckDB executes at once across all tenants; more wait, and a freed slot goes to the waiting tenant holding the fewest")
	queryExecutingPerTenant := fs.Int("query.max-executing-per-tenant", 0, "most of -query.max-executing one tenant holds, even when no other waits, so that another tenant's query starts at once; 0 means half of -query.max-executing (at least 1)")
	queryConcurrency := fs.Int("query.max-concurrent", query.DefaultMaxConcurrent, "queries running at once per tenant; more wait, then get 503")
	queryCache := bytesFlag(fs, "query.cache-bytes", query.DefaultCacheBytes, "bytes of query results kept by the result cache, all tenants together (a tenant holds at most 1/8, a result at most 1 MiB); a cached result is served only while the tenant's data is unchanged; 0 turns the cache off")
	durability := fs.String("durability", "durable", "durable: an insert is acknowledged once in the fsynced write-ahead log; none: once buffered in memory (faster, loses acknowledged rows on a crash)")
	walSegment := bytesFlag(fs, "wal.segment-size", 64<<20, "bytes per write-ahead log segment; whole segments are deleted once committed")
	walBacklog := bytesFlag(fs, "wal.max-backlog", 1<<30, "bytes of write-ahead log not yet committed before inserts get 503")
	idemWindow := fs.Duration("ingest.idempotency-window", 24*time.Hour, "how long an Idempotency-Key is remembered")
	webhookWindow := fs.Duration("webhooks.dedup-window", webhook.DefaultDedupWindow, "how long a webhook delivery id is remembered; a redelivery within it is answered 200 and not stored again")
	webhookTolerance := fs.Duration("webhooks.tolerance", webhook.DefaultTolerance, "how far a Stripe or Standard Webhooks signed timestamp may be from now before the delivery gets 401")
	shareBaseURL := fs.String("share.base-url", "", "public base URL of share links, e.g. https://duckgate.example.com; empty gives relative /share/<id> links")
	shareMaxDuration := fs.Duration("share.max-duration", share.DefaultMaxDuration, "longest lifetime a share link may ask for; longer requests get 400")
	maxOpen := fs.Int("tenantdb.max-open", tenantdb.DefaultMaxOpen, "tenant databases kept open at once; the least recently used idle one is closed")
	singleThread := bytesFlag(fs, "tenantdb.single-thread-below", tenantdb.DefaultSingleThreadBelow, "a tenant database whose file is smaller than this when it opens runs on one DuckDB thread whatever its plan says (a second thread only costs CPU on small tables); -1 turns it off")
	duckdbMemory := bytesFlag(fs, "duckdb.max-memory", tenantdb.DefaultMemoryCap(), "most memory DuckDB may hold in this process, over all tenant databases (each also has its plan's memory_limit); an allocation past it fails the statement that asked for it with an out-of-memory error. Default: half of the machine's (or cgroup's) memory; 0: no cap")
	clusterOpts := addClusterFlags(fs)
	_ = fs.Parse(args)
	if *adminKey == "" {
		// Read here, not as the flag's default: -h must never print it.
		*adminKey = os.Getenv("DUCKGATE_ADMIN_KEY")
	}
	listenOn, err := listenAddr(*listen)
	if err != nil {
		return err
	}
	if *queryMaxSQL <= 0 || *queryMaxSQL > 1<<30 {
		return fmt.Errorf("-query.max-sql must be between 1 byte and 1 GiB, not %d", *queryMaxSQL)
	}

	log, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	if err := os.MkdirAll(*dataDir, 0o750); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	var plans map[string]tenant.Plan
	if *plansFile != "" {
		if plans, err = tenant.LoadPlans(*plansFile); err != nil {
			return err
		}
	}
	// Cluster mode (-nats): the node connects first, for its shared state
	// and its log live in JetStream.
	var cconn *cluster.Conn
	var ccfg cluster.Config
	if clusterOpts.enabled() {
		if ccfg, err = clusterOpts.config(listenOn); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cconn, err = cluster.Connect(cctx, ccfg, log)
		cancel()
		if err != nil {
			return err
		}
		defer cconn.Close()
		log.Info("cluster mode", zap.String("node", ccfg.Node), zap.Strings("nats", ccfg.URLs), zap.String("advertise", ccfg.HTTPAddr))
	}
	// state is the shared state of a cluster node: tenants, keys, share
	// links and webhook endpoints in JetStream KV buckets (cluster/kv); nil
	// keeps them in files, a single node.
	var state *kv.Stores
	if cconn != nil {
		kctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		state, err = kv.Open(kctx, cconn.JS, kv.Config{Replicas: cconn.Replicas(), Log: log})
		cancel()
		if err != nil {
			return err
		}
	}
	tenantCfg := tenant.Config{Path: filepath.Join(*dataDir, "meta.json"), Plans: plans}
	hooksCfg := webhook.StoreConfig{Dir: *dataDir, DedupWindow: *webhookWindow}
	if state != nil {
		tenantCfg.Shared, hooksCfg.Shared = state.Tenants, state.Webhooks
		if hooksCfg.Key, err = webhookKey(os.Getenv); err != nil {
			return err
		}
	}
	tenants, err := tenant.Open(tenantCfg)
	if err != nil {
		return err
	}
	if tenants.PlansDiffer() {
		log.Warn("this node's plans differ from the cluster's; using the cluster's (the first node's), see README Cluster: shared state")
	}
	if err := firstStart(tenants, *adminKey); err != nil {
		return err
	}

	hooks, err := webhook.Open(hooksCfg)
	if err != nil {
		return err
	}
	if err := tenantdb.SetMemoryCap(*duckdbMemory); err != nil {
		return err
	}
	set := metrics.NewSet() // every package's series, served on /metrics
	pool, err := tenantdb.New(tenantdb.Config{
		Metrics:           set,
		Dir:               filepath.Join(*dataDir, "tenants"),
		MaxOpen:           *maxOpen,
		SingleThreadBelow: *singleThread,
		LimitsOf: func(id string) tenantdb.Limits {
			p := tenants.PlanOf(id)
			return tenantdb.Limits{MemoryLimit: p.MemoryLimit, Threads: p.Threads}
		},
	}, log)
	if err != nil {
		return err
	}
	var wl *wal.Log
	var node *cluster.Node // cluster mode: the log is JetStream's stream, not the local WAL
	var clog batcher.Log
	switch {
	case cconn != nil:
		node = cluster.New(cconn, set, log)
		clog = node
	case *durability == "durable":
		fsyncSeconds := set.NewPrometheusHistogramExt("duckgate_wal_fsync_seconds", metrics.ExponentialBuckets(0.0001, 2, 16))
		if wl, err = wal.Open(wal.Config{Dir: filepath.Join(*dataDir, "wal"), SegmentSize: *walSegment, MaxBacklog: *walBacklog, Metrics: set,
			OnFsync: func(d time.Duration) { fsyncSeconds.Update(d.Seconds()) }}, log); err != nil {
			return err
		}
	case *durability == "none":
		log.Warn("durability=none: acknowledged rows still in memory are lost if the process crashes")
	default:
		return fmt.Errorf("-durability must be durable or none, not %q", *durability)
	}
	// The retention sweep visits every tenant's database; in cluster mode
	// only those this node writes (their writers), not stale local copies.
	sweepTenants := func() []string {
		var ids []string
		for _, t := range tenants.List() {
			ids = append(ids, t.ID)
		}
		return ids
	}
	if cconn != nil {
		sweepTenants = nil
	}
	b, err := batcher.New(batcher.Config{
		Metrics:              set,
		FlushRows:            *flushRows,
		FlushBytes:           *flushBytes,
		FlushInterval:        *flushInterval,
		MinFlushInterval:     *minFlush,
		ColdFlushInterval:    *coldFlush,
		MaxConcurrentFlushes: *maxFlushes,
		MaxBufferedBytes:     *maxBuffered,
		MaxColumns:           *maxColumns,
		WAL:                  wl,
		Log:                  clog,
		StateDir:             filepath.Join(*dataDir, "state"),
		IdempotencyWindow:    *idemWindow,
		TenantExists: func(id string) bool {
			_, err := tenants.Get(id)
			return err == nil
		},
		PlanRetention: func(id string) time.Duration { return time.Duration(tenants.PlanOf(id).Retention) },
		SweepInterval: *sweepInterval,
		Tenants:       sweepTenants,
	}, pool, log)
	if err != nil {
		return err
	}
	qe := query.New(query.Config{
		Timeout:               *queryTimeout,
		MaxRows:               *queryMaxRows,
		MaxBytes:              *queryMaxBytes,
		MaxSQLBytes:           int(*queryMaxSQL),
		MaxConcurrent:         *queryConcurrency,
		MaxExecuting:          *queryExecuting,
		MaxExecutingPerTenant: *queryExecutingPerTenant,
		Metrics:               set,
		Cache:                 query.CacheConfig{MaxBytes: *queryCache},
		Versions:              b,
	}, pool, b, log)
	shareCfg := share.Config{
		Path:        filepath.Join(*dataDir, "shares.json"),
		Metrics:     set,
		BaseURL:     *shareBaseURL,
		MaxDuration: *shareMaxDuration,
		TenantActive: func(id string) bool {
			t, err := tenants.Get(id)
			return err == nil && t.Status == tenant.StatusActive
		},
	}
	if state != nil {
		shareCfg.Shared = state.Shares
	}
	shares, err := share.Open(shareCfg, qe, log)
	if err != nil {
		return err
	}
	ih := ingest.New(ingest.Config{
		Metrics:     set,
		MaxBodySize: *maxBody,
		WaitTimeout: *waitTimeout,
		Tenants:     tenants,
		Batcher:     b,
		Pool:        pool,
	}, log)
	ah := admin.New(admin.Config{
		Tenants:  tenants,
		Metrics:  set, // sampled for the dashboard's charts
		Batcher:  b,
		Pool:     pool,
		Ingest:   ih,
		Share:    shares,
		Webhooks: hooks,
		Query:    query.Config{Timeout: *queryTimeout, MaxRows: *queryMaxRows, MaxBytes: *queryMaxBytes, MaxSQLBytes: int(*queryMaxSQL)},
	}, log)
	srv := api.New(api.Config{
		Metrics:     set,
		MaxBodySize: *maxBody,
		Tenants:     tenants,
		Ingest:      ih,
		Query:       qe,
		Share:       shares,
		Webhooks: webhook.NewHandler(webhook.Config{
			Store:     hooks,
			Tenants:   tenants,
			Batcher:   b,
			Ingest:    ih,
			Tolerance: *webhookTolerance,
		}, log),
		Admin:   ah,
		Cluster: node,
	}, log)
	httpSrv := srv.HTTPServer()

	ln, err := net.Listen("tcp", listenOn)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Recovery runs before /healthz answers 200: nothing acknowledged is
	// missing once the server says it is ready.
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	rs, err := b.Recover(context.Background())
	if err != nil {
		return err
	}
	if wl != nil {
		log.Info("write-ahead log recovered", zap.Int("records", rs.Records), zap.Int("replayed", rs.Replayed),
			zap.Int("rows", rs.Rows), zap.Int("already_committed", rs.Skipped), zap.Int("dropped", rs.Dropped),
			zap.Bool("torn_or_damaged_tail", rs.TornTail), zap.Int64("torn_bytes", rs.TornBytes), zap.String("corrupt", rs.Corrupt), zap.Int("tenants_still_retrying", rs.FlushErrors))
	}
	if node != nil {
		if err := node.Start(b, pool); err != nil {
			return err
		}
	}
	srv.SetReady()
	log.Info("duckgate serving", zap.String("listen", ln.Addr().String()), zap.String("data", *dataDir))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		log.Info("stopping", zap.String("signal", s.String()))
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	}

	// Stop in reverse order: no new requests, then flush, then close.
	var errs []error
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelHTTP()
	if err := httpSrv.ShutdownWithContext(httpCtx); err != nil {
		// Requests still running past this get ErrClosed (503) from the
		// batcher below: nothing they sent is acknowledged, so none is lost.
		log.Warn("HTTP connections still open at shutdown; closing anyway", zap.Error(err))
	}
	adminCtx, cancelAdmin := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelAdmin()
	if err := ah.Close(adminCtx); err != nil {
		errs = append(errs, err)
	}
	if err := shares.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close share links: %w", err))
	}
	if err := hooks.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close webhook store: %w", err))
	}
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), time.Minute)
	defer cancelFlush()
	if node != nil {
		// Give the partitions back first: their buffers are committed and
		// the other nodes take them over without waiting for the leases.
		if err := node.Close(flushCtx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := b.Close(flushCtx); err != nil {
		errs = append(errs, fmt.Errorf("flush buffers: %w", err))
	}
	if err := pool.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close databases: %w", err))
	}
	if wl != nil {
		if err := wl.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close write-ahead log: %w", err))
		}
	}
	if err := tenants.Save(); err != nil {
		errs = append(errs, err)
	}
	if state != nil {
		if err := state.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop watching the shared state: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	log.Info("stopped cleanly")
	return nil
}

// firstStart makes the demo tenant on an empty registry and sets the admin
// key, printing the keys a person needs on stdout.
func firstStart(tenants *tenant.Store, adminKey string) error {
	switch {
	case adminKey != "":
		if !tenants.IsAdmin([]byte(adminKey)) {
			if err := tenants.SetAdminKey(adminKey); err != nil {
				return err
			}
		}
	case !tenants.HasAdminKey():
		key := tenant.RandomKey()
		if err := tenants.SetAdminKey(key); err != nil {
			return err
		}
		fmt.Printf("admin_key=%s (shown once; set -admin-key or DUCKGATE_ADMIN_KEY to choose your own)\n", key)
	}
	if !tenants.Empty() {
		return nil
	}
	t, _, key, err := tenants.CreateTenant("demo", tenant.DefaultPlan)
	if err != nil {
		return fmt.Errorf("create demo tenant: %w", err)
	}
	fmt.Printf("demo tenant %s api_key=%s\n", t.ID, key)
	return nil
}

// webhookKey reads the key that seals webhook secrets from
// $DUCKGATE_WEBHOOK_KEY (64 hex digits): every node of a cluster must seal
// with the same key. Unset, the node uses webhook.key in its data
// directory, which must then be the same file on every node.
func webhookKey(getenv func(string) string) ([]byte, error) {
	s := strings.TrimSpace(getenv("DUCKGATE_WEBHOOK_KEY"))
	if s == "" {
		return nil, nil
	}
	key, err := hex.DecodeString(s)
	if err != nil || len(key) != 32 {
		return nil, errors.New("DUCKGATE_WEBHOOK_KEY must be 64 hex digits (32 random bytes, e.g. from openssl rand -hex 32), the same on every node")
	}
	return key, nil
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.OutputPaths = []string{"stderr"}
	cfg.Sampling = nil
	return cfg.Build()
}
