package batcher

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"go.uber.org/zap"

	"duckgate/tenantdb"
	"duckgate/wal"
)

// clickRows builds n 10-key click events the way the ingest decoder does.
func clickRows(n int) *Rows {
	b := NewBuilder()
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		b.AddNumber([]byte("id"), fmt.Appendf(nil, "%d", i))
		b.AddString([]byte("user"), fmt.Appendf(nil, "user-%d", i%1000))
		b.AddString([]byte("event"), []byte("click"))
		b.AddString([]byte("ts"), []byte(base.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano)))
		b.AddString([]byte("url"), fmt.Appendf(nil, "https://example.com/p/%d", i%500))
		b.AddString([]byte("referrer"), fmt.Appendf(nil, "https://search.example/?q=%d", i%77))
		b.AddString([]byte("session_id"), fmt.Appendf(nil, "s-%08x", i/10))
		b.AddString([]byte("country"), []byte("DE"))
		b.AddNumber([]byte("duration_ms"), fmt.Appendf(nil, "%d", i%3000))
		b.AddJSON([]byte("props"), fmt.Appendf(nil, `{"button":"buy","ab":"b","n":%d}`, i))
		b.EndRow()
	}
	return b.Rows()
}

// BenchmarkWriterCommit measures the writer's commit of 100,000 buffered
// click events (schema, Appender, transaction) beside the raw Appender
// appending the same values, in one run: the writer's own overhead.
//
//	go test -run '^$' -bench WriterCommit -benchtime 5x ./batcher/
func BenchmarkWriterCommit(b *testing.B) {
	const n = 100_000
	rows := clickRows(n)
	b.Run("writer", func(b *testing.B) {
		pool, err := tenantdb.New(tenantdb.Config{Dir: b.TempDir()}, zap.NewNop())
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		bt, err := New(Config{FlushInterval: time.Hour}, pool, zap.NewNop())
		if err != nil {
			b.Fatal(err)
		}
		defer bt.Close(context.Background())
		w, _ := bt.writer("t")
		items := []*pending{{rows: rows, durable: true, seq: 1}}
		if _, _, err := w.commit(w.ctx, "events", items); err != nil { // create the table outside the timing
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			if _, _, err := w.commit(w.ctx, "events", items); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("appender", func(b *testing.B) {
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
			id, dur                                          int64
			user, event, url, ref, session, country, propsJS string
			ts                                               time.Time
		}
		evs := make([]ev, n)
		for i := range n {
			c := rows.Cells[i*10 : i*10+10]
			evs[i] = ev{id: int64(c[0].Num), user: c[1].Str, event: c[2].Str, ts: time.UnixMicro(int64(c[3].Num)).UTC(),
				url: c[4].Str, ref: c[5].Str, session: c[6].Str, country: c[7].Str, dur: int64(c[8].Num), propsJS: c[9].Str}
		}
		conn, err := db.Conn(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		b.ResetTimer()
		for range b.N {
			err := conn.Raw(func(dc any) error {
				a, err := duckdb.NewAppender(dc.(driver.Conn), "", "", "events")
				if err != nil {
					return err
				}
				for _, e := range evs {
					if err := a.AppendRow(e.id, e.user, e.event, e.ts, e.url, e.ref, e.session, e.country, e.dur, json.RawMessage(e.propsJS)); err != nil {
						return err
					}
				}
				return a.Close()
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkSmallFlush measures the fixed cost of one flush: a commit of 10
// click events with a write-ahead log (so the applied position is recorded
// too), the shape of a tenant sending a few events a second.
//
//	go test -run '^$' -bench SmallFlush ./batcher/
func BenchmarkSmallFlush(b *testing.B) {
	dir := b.TempDir()
	pool, err := tenantdb.New(tenantdb.Config{Dir: filepath.Join(dir, "tenants")}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	l, err := wal.Open(wal.Config{Dir: filepath.Join(dir, "wal"), NoSync: true}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	bt, err := New(Config{FlushInterval: time.Hour, WAL: l, StateDir: filepath.Join(dir, "state")}, pool, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close(context.Background())
	w, _ := bt.writer("t")
	rows := clickRows(10)
	seq := uint64(0)
	commit := func() {
		seq++
		if _, _, err := w.commit(w.ctx, "events", []*pending{{rows: rows, durable: true, seq: seq}}); err != nil {
			b.Fatal(err)
		}
	}
	commit() // create the tables outside the timing
	var r0, r1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	b.ResetTimer()
	for range b.N {
		commit()
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}
