package api

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap"

	"duckgate/batcher"
	"duckgate/tenant"
	"duckgate/tenantdb"
	"duckgate/wal"
)

// clickEvents returns n NDJSON click events with 10 top-level keys.
func clickEvents(seed, n int) []byte {
	var b bytes.Buffer
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		id := seed*n + i
		fmt.Fprintf(&b, `{"id":%d,"user":"user-%d","event":"click","ts":%q,"url":"https://example.com/p/%d","referrer":"https://search.example/?q=%d","session_id":"s-%08x","country":"DE","duration_ms":%d,"props":{"button":"buy","ab":"b","n":%d}}`+"\n",
			id, id%1000, base.Add(time.Duration(id)*time.Millisecond).Format(time.RFC3339Nano), id%500, id%77, id/10, id%3000, i)
	}
	return b.Bytes()
}

// BenchmarkIngestVsAppender measures the ingest path (HTTP handler →
// decode → batcher → write-ahead log → Appender → committed) for NDJSON
// batches of 1,000 click events from 8 clients, beside the raw Appender
// rate for the same rows in the same run. rows/s is what the gateway
// committed; ratio is gateway/appender (goal: 0.7 or better).
//
//	go test -run '^$' -bench IngestVsAppender -benchtime 200x ./ingest/
func BenchmarkIngestVsAppender(b *testing.B) {
	const batch = 1000
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = clickEvents(i, batch)
	}
	var gateway, raw float64
	b.Run("gateway", func(b *testing.B) {
		srv, bt, tenantID, key := benchStack(b)
		ln := fasthttputil.NewInmemoryListener()
		go func() { _ = srv.HTTPServer().Serve(ln) }()
		defer ln.Close()
		client := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }, MaxConnsPerHost: 64}
		b.SetBytes(int64(len(bodies[0])))
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		next := make(chan int, b.N)
		for i := range b.N {
			next <- i
		}
		close(next)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				for i := range next {
					req.Reset()
					req.Header.SetMethod("POST")
					req.SetRequestURI("http://duckgate/api/data/insert/events")
					req.Header.Set("X-API-KEY", key)
					req.SetBodyRaw(bodies[i%len(bodies)])
					if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
						b.Errorf("insert: %v %d %s", err, resp.StatusCode(), resp.Body())
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := bt.Flush(context.Background(), tenantID); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		if got := bt.Stats().RowsCommitted.Load(); got != int64(b.N*batch) {
			b.Fatalf("committed %d rows, want %d", got, b.N*batch)
		}
		gateway = float64(b.N*batch) / elapsed.Seconds()
		b.ReportMetric(gateway, "rows/s")
	})
	b.Run("appender", func(b *testing.B) {
		raw = appenderRate(b, bodies, b.N)
		b.ReportMetric(raw, "rows/s")
	})
	if raw > 0 && gateway > 0 {
		b.Logf("gateway %.0f rows/s, raw Appender %.0f rows/s, ratio %.2f", gateway, raw, gateway/raw)
	}
}

// benchStack is duckgate as `serve` runs it by default (durable acks),
// in a temporary directory, with one tenant.
func benchStack(b *testing.B) (*Server, *batcher.Batcher, string, string) {
	return benchStackWAL(b, true)
}

// benchStackWAL is benchStack, with durable false as `serve -durability
// none` runs it (no write-ahead log: acks once buffered).
func benchStackWAL(b *testing.B, durable bool) (*Server, *batcher.Batcher, string, string) {
	dir := b.TempDir()
	log := zap.NewNop()
	tenants, err := tenant.Open(tenant.Config{Path: filepath.Join(dir, "meta.json")})
	if err != nil {
		b.Fatal(err)
	}
	tn, _, key, err := tenants.CreateTenant("bench", "enterprise")
	if err != nil {
		b.Fatal(err)
	}
	pool, err := tenantdb.New(tenantdb.Config{Dir: filepath.Join(dir, "tenants")}, log)
	if err != nil {
		b.Fatal(err)
	}
	var wl *wal.Log
	if durable {
		if wl, err = wal.Open(wal.Config{Dir: filepath.Join(dir, "wal")}, log); err != nil {
			b.Fatal(err)
		}
	}
	bt, err := batcher.New(batcher.Config{WAL: wl, StateDir: filepath.Join(dir, "state")}, pool, log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = bt.Close(context.Background())
		_ = pool.Close()
		if wl != nil {
			_ = wl.Close()
		}
	})
	srv := serverConfig{Tenants: tenants, Batcher: bt}.build(b, log)
	srv.SetReady()
	return srv, bt, tn.ID, key
}

// appenderRate appends n batches of the events straight into DuckDB with
// the Appender (types as the gateway infers them) and returns rows/s.
func appenderRate(b *testing.B, bodies [][]byte, n int) float64 {
	db, err := sql.Open("duckdb", filepath.Join(b.TempDir(), "raw.duckdb"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE events (id BIGINT, "user" VARCHAR, event VARCHAR, ts TIMESTAMPTZ, url VARCHAR,
		referrer VARCHAR, session_id VARCHAR, country VARCHAR, duration_ms BIGINT, props JSON)`); err != nil {
		b.Fatal(err)
	}
	type ev struct {
		ID         int64           `json:"id"`
		User       string          `json:"user"`
		Event      string          `json:"event"`
		TS         time.Time       `json:"ts"`
		URL        string          `json:"url"`
		Referrer   string          `json:"referrer"`
		SessionID  string          `json:"session_id"`
		Country    string          `json:"country"`
		DurationMS int64           `json:"duration_ms"`
		Props      json.RawMessage `json:"props"`
	}
	rows := make([][]ev, len(bodies))
	for i, body := range bodies {
		for _, line := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
			var e ev
			if err := json.Unmarshal(line, &e); err != nil {
				b.Fatal(err)
			}
			rows[i] = append(rows[i], e)
		}
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	b.ResetTimer()
	start := time.Now()
	total := 0
	err = conn.Raw(func(dc any) error {
		a, err := duckdb.NewAppender(dc.(driver.Conn), "", "", "events")
		if err != nil {
			return err
		}
		for i := range n {
			for _, e := range rows[i%len(rows)] {
				if err := a.AppendRow(e.ID, e.User, e.Event, e.TS, e.URL, e.Referrer, e.SessionID, e.Country, e.DurationMS, e.Props); err != nil {
					return err
				}
				total++
			}
		}
		return a.Close()
	})
	if err != nil {
		b.Fatal(err)
	}
	return float64(total) / time.Since(start).Seconds()
}

// BenchmarkInsertOne measures the single-event path: one click event per
// request, 64 concurrent callers of the server's handler (no sockets, so
// CPU and allocations are the server's own), acknowledged after the
// fsynced write-ahead log as `serve` does by default. allocs/op and B/op
// are per request, the writer goroutines' flushes included.
//
//	go test -run '^$' -bench InsertOne -benchmem -benchtime 20000x ./api/
func BenchmarkInsertOne(b *testing.B) {
	b.Run("durable", func(b *testing.B) { benchInsertOne(b, true) })
	b.Run("none", func(b *testing.B) { benchInsertOne(b, false) })
}

func benchInsertOne(b *testing.B, durable bool) {
	bodies := make([][]byte, 256)
	for i := range bodies {
		bodies[i] = clickEvents(i, 1)
	}
	srv, bt, tenantID, key := benchStackWAL(b, durable)
	h := srv.HTTPServer().Handler
	var next atomic.Int64
	b.SetParallelism(32) // 64 callers on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			ctx.Request.Reset()
			ctx.Response.Reset()
			ctx.Request.Header.SetMethod("POST")
			ctx.Request.SetRequestURI("/api/data/insert/events")
			ctx.Request.Header.Set("X-API-KEY", key)
			ctx.Request.SetBodyRaw(bodies[next.Add(1)%int64(len(bodies))])
			h(&ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Errorf("insert: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				return
			}
		}
	})
	b.StopTimer()
	if err := bt.Flush(context.Background(), tenantID); err != nil {
		b.Fatal(err)
	}
}
