package main

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// appenderChunk is the rows per transaction of the raw Appender baseline:
// the gateway's default -batcher.flush-rows, so both commit equally often.
const appenderChunk = 100_000

// openDuckDB opens a fresh database file in dir.
func openDuckDB(dir, name string) (*sql.DB, error) {
	db, err := sql.Open("duckdb", filepath.Join(dir, name+".duckdb"))
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec(eventsDDL); err != nil {
		db.Close()
		return nil, fmt.Errorf("create table: %w", err)
	}
	return db, nil
}

// appenderRate appends n rows, cycling through evs, into a fresh database
// with the DuckDB Appender, one transaction per appenderChunk rows, as the
// gateway's writer does; it returns rows per second.
func appenderRate(dir string, evs []event, n int) (float64, error) {
	return timeFill(dir, "appender", n, func(ctx context.Context, conn *sql.Conn) error {
		for done := 0; done < n; {
			k := min(appenderChunk, n-done)
			if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
				return err
			}
			err := conn.Raw(func(dc any) error {
				a, err := duckdb.NewAppender(dc.(driver.Conn), "", "", "events")
				if err != nil {
					return err
				}
				for i := done; i < done+k; i++ {
					e := &evs[i%len(evs)]
					if err := a.AppendRow(e.ID, e.User, e.Event, e.TS, e.URL, e.Referrer, e.SessionID, e.Country, e.DurationMS, e.Props); err != nil {
						_ = a.Close()
						return err
					}
				}
				return a.Close()
			})
			if err != nil {
				_, _ = conn.ExecContext(ctx, "ROLLBACK")
				return fmt.Errorf("append: %w", err)
			}
			if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
				return err
			}
			done += k
		}
		return nil
	})
}

// readNDJSONRate writes n rows of evs as NDJSON to a file and times DuckDB's
// own INSERT ... SELECT * FROM read_ndjson of it; it returns rows per second.
func readNDJSONRate(dir string, evs []event, n int) (float64, error) {
	path := filepath.Join(dir, "events.ndjson")
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	chunk := ndjson(evs)
	for done := 0; done < n; done += len(evs) {
		b := chunk
		if k := n - done; k < len(evs) {
			b = ndjson(evs[:k])
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return 0, err
		}
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	defer os.Remove(path)
	return timeFill(dir, "read_ndjson", n, func(ctx context.Context, conn *sql.Conn) error {
		if _, err := conn.ExecContext(ctx, "INSERT INTO events SELECT * FROM read_ndjson('"+path+"')"); err != nil {
			return fmt.Errorf("read_ndjson: %w", err)
		}
		return nil
	})
}

// timeFill creates the events table in a fresh database file name in dir,
// times fill on one connection of it, checks that the table then holds n
// rows, and returns n per second of fill's time: the frame both ingest
// baselines share.
func timeFill(dir, name string, n int, fill func(ctx context.Context, conn *sql.Conn) error) (float64, error) {
	db, err := openDuckDB(dir, name)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	start := time.Now()
	if err := fill(ctx, conn); err != nil {
		return 0, err
	}
	el := time.Since(start)
	if err := checkCount(conn, n); err != nil {
		return 0, err
	}
	return float64(n) / el.Seconds(), nil
}

func checkCount(conn *sql.Conn, want int) error {
	var got int
	if err := conn.QueryRowContext(context.Background(), "SELECT count(*) FROM events").Scan(&got); err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("table has %d rows, want %d", got, want)
	}
	return nil
}

// countRows opens a database file read-only and counts table's rows: the
// fallback when the query API is absent (the server must be stopped).
func countRows(path, table string) (int64, error) {
	db, err := sql.Open("duckdb", path+"?access_mode=read_only")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	err = db.QueryRow("SELECT count(*) FROM " + table).Scan(&n)
	return n, err
}

// copyRate times DuckDB's own COPY (query) TO a file in format (json as one
// array, or csv with a header): the encoding ceiling of the query scenario.
// It returns MB/s (10^6 bytes) and the file size.
func copyRate(dir, query, format string) (float64, int64, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	path := filepath.Join(dir, "copy."+format)
	defer os.Remove(path)
	opts := "FORMAT json, ARRAY true"
	if format == "csv" {
		opts = "FORMAT csv, HEADER true"
	}
	start := time.Now()
	if _, err := db.Exec("COPY (" + query + ") TO '" + path + "' (" + opts + ")"); err != nil {
		return 0, 0, fmt.Errorf("COPY TO %s: %w", format, err)
	}
	el := time.Since(start)
	st, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	return float64(st.Size()) / 1e6 / el.Seconds(), st.Size(), nil
}

// bareServer is the HTTP ceiling: fasthttp on loopback that parses each
// NDJSON line with fastjson and answers 200, storing nothing.
type bareServer struct {
	srv  *fasthttp.Server
	ln   net.Listener
	addr string
}

func startBare() (*bareServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var pp fastjson.ParserPool
	b := &bareServer{ln: ln, addr: ln.Addr().String()}
	b.srv = &fasthttp.Server{
		Name:               "bare",
		MaxRequestBodySize: 64 << 20,
		Handler: func(ctx *fasthttp.RequestCtx) {
			p := pp.Get()
			defer pp.Put(p)
			n := 0
			for rest := ctx.PostBody(); len(rest) > 0; {
				line := rest
				if i := bytes.IndexByte(rest, '\n'); i >= 0 {
					line, rest = rest[:i], rest[i+1:]
				} else {
					rest = nil
				}
				if len(bytes.TrimSpace(line)) == 0 {
					continue
				}
				if _, err := p.ParseBytes(line); err != nil {
					ctx.Error(err.Error(), fasthttp.StatusBadRequest)
					return
				}
				n++
			}
			ctx.SetContentType("application/json")
			var buf [64]byte
			out := append(buf[:0], `{"accepted":`...)
			out = strconv.AppendInt(out, int64(n), 10)
			out = append(out, `,"rejected":0,"errors":[]}`...)
			ctx.SetBody(out)
		},
	}
	go func() { _ = b.srv.Serve(ln) }()
	return b, nil
}

func (b *bareServer) stop() { _ = b.srv.Shutdown() }
