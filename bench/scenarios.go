package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fastjson"
)

// Load shapes, fixed by issue #8.
const (
	batchRows    = 1000 // events per request in batched
	batchConns   = 8
	singleConns  = 64
	tenantConns  = 8
	tenantRows   = 10 // events per request in tenants
	queryRows    = 1_000_000
	insertEvents = "/api/data/insert/events"
)

// errNoQueryAPI means the server answers 404 on /api/data/query.
var errNoQueryAPI = errors.New("query API absent")

// bench holds what the scenarios of one run share.
type bench struct {
	opt    options
	tmp    string   // temp directory of this run
	bin    string   // server binary; "" with -url
	remote *gateway // with -url
	extra  []string // -server-flags

	evs          []event  // the events every scenario sends
	batchBodies  [][]byte // NDJSON bodies of batchRows events
	singleBodies [][]byte // one event each
	tenantBodies [][]byte // tenantRows events each

	appenderOnce sync.Once
	appender     float64 // rows/s of the raw Appender; NaN if it failed
	appenderErr  error

	figs []figure
}

func (b *bench) add(f figure) { b.figs = append(b.figs, f) }

// fail records a scenario that could not run.
func (b *bench) fail(scenario string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", scenario, err)
	b.add(figure{scenario: scenario, metric: "—", value: nan, na: errNA(err), base: nan})
}

// errNA is how a figure that err made n/a says why.
func errNA(err error) string { return "error: " + oneLine(err.Error()) }

// addFailed adds the figure metric (e.g. "failed requests") if res had
// failed requests: they are a missed goal of 0.
func (b *bench) addFailed(sc, metric string, res *loadResult) {
	if res != nil && res.errs > 0 {
		b.add(figure{scenario: sc, metric: metric, unit: unitCount, value: float64(res.errs), base: nan, goal: "0", met: -1})
	}
}

func oneLine(s string) string {
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return strings.NewReplacer("\n", " ", "\r", " ", "|", "/").Replace(s)
}

// server returns a fresh child server for a scenario (or the -url server)
// and the function that stops it.
func (b *bench) server(name string) (*gateway, error) {
	if b.remote != nil {
		return b.remote, nil
	}
	return startServer(b.bin, b.tmp, name, b.extra)
}

// setup starts the server of scenario sc (see server), creates its tenant,
// bench_<sc>, on -plan, and returns the tenant's id and a target with its
// key and room for conns connections. On failure it records sc as failed
// and returns a nil gateway; else the caller stops the gateway.
func (b *bench) setup(sc string, conns int) (*gateway, string, target) {
	g, err := b.server(sc)
	if err != nil {
		b.fail(sc, err)
		return nil, "", target{}
	}
	id, key, err := g.createTenant("bench_"+sc, b.opt.plan)
	if err != nil {
		b.fail(sc, err)
		g.stop()
		return nil, "", target{}
	}
	return g, id, target{hc: newHostClient(g.addr, conns), key: key}
}

// setupN is setup for the i-th run of a scenario measured several times:
// each run gets its own fresh server (and data directory).
func (b *bench) setupN(sc string, i, conns int) (*gateway, string, target) {
	if i == 0 || b.remote != nil {
		return b.setup(sc, conns)
	}
	g, err := startServer(b.bin, b.tmp, sc+"-"+strconv.Itoa(i), b.extra)
	if err != nil {
		b.fail(sc, err)
		return nil, "", target{}
	}
	id, key, err := g.createTenant("bench_"+sc+strconv.Itoa(i), b.opt.plan)
	if err != nil {
		b.fail(sc, err)
		g.stop()
		return nil, "", target{}
	}
	return g, id, target{hc: newHostClient(g.addr, conns), key: key}
}

// load runs spec against tgt as phase of the progress line, and reports
// failed requests on stderr.
func load(phase string, tgt target, spec loadSpec) *loadResult {
	prog.begin(phase)
	res := run(tgt, spec)
	if res.errs > 0 {
		fmt.Fprintf(os.Stderr, "%s: %d failed requests; first: %s\n", phase, res.errs, res.firstErr)
	}
	return res
}

// loadBare runs spec against the bare fasthttp server (startBare), the HTTP
// ceiling, as phase of the progress line. If that server cannot start, the
// result is empty: its rates are NaN.
func loadBare(phase string, spec loadSpec) *loadResult {
	prog.begin(phase)
	bare, err := startBare()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", phase, err)
		return &loadResult{}
	}
	defer bare.stop()
	return run(target{hc: newHostClient(bare.addr, spec.conns)}, spec)
}

// appenderBaseline measures the raw Appender once per run.
func (b *bench) appenderBaseline() (float64, error) {
	b.appenderOnce.Do(func() {
		prog.begin("baseline/raw Appender")
		b.appender, b.appenderErr = appenderRate(b.tmp, b.evs, b.opt.baselineRows)
		if b.appenderErr != nil {
			b.appender = nan
		}
	})
	return b.appender, b.appenderErr
}

func rate(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() }

// queryURI is the GET URI of sql in format, without flush.
func queryURI(sql, format string) string {
	return "/api/data/query?format=" + format + "&query=" + url.QueryEscape(sql)
}

// queryJSON runs sql through the query API and returns the parsed JSON
// array; a 404 is errNoQueryAPI.
func queryJSON(tgt target, sql string) ([]*fastjson.Value, error) {
	code, body, err := get(tgt, queryURI(sql, "json"))
	if err != nil {
		return nil, err
	}
	if code == http.StatusNotFound {
		return nil, fmt.Errorf("%w: %s", errNoQueryAPI, oneLine(string(body)))
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("query %q: HTTP %d: %s", sql, code, oneLine(string(body)))
	}
	v, err := fastjson.ParseBytes(body)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w: %s", sql, err, oneLine(string(body)))
	}
	return v.Array()
}

// count counts table's rows of tenant id: through the query API, else, for
// a child server, by stopping it and opening its database file.
func (b *bench) count(g *gateway, tgt target, id, table string) (int64, string, error) {
	arr, err := queryJSON(tgt, "select count(*) as n from "+table)
	if err == nil {
		if len(arr) != 1 {
			return 0, "", fmt.Errorf("count: want one row, got %d", len(arr))
		}
		return arr[0].GetInt64("n"), "query API", nil
	}
	if !errors.Is(err, errNoQueryAPI) {
		return 0, "", err
	}
	if !g.child() {
		return 0, "", fmt.Errorf("%w and the server is remote: cannot count committed rows", err)
	}
	if err := g.stop(); err != nil {
		return 0, "", fmt.Errorf("stop server to count rows: %w; log: %s", err, tail(g.logPath))
	}
	n, err := countRows(g.tenantDB(id), table)
	return n, "DuckDB file after SIGTERM", err
}

// batched: 1,000-event NDJSON batches from 8 connections; committed rows/s
// against the raw Appender (alternated, -pairs times: a fresh server's run,
// then the Appender's, ...; the ratio is the median of the pairs'),
// read_ndjson and the bare HTTP ceiling (once).
func (b *bench) batched() {
	const sc = "batched"
	var gw, app, ratios []float64
	var last *batchedRun
	for i := range b.opt.pairs {
		r := b.batchedOnce(sc, i)
		if r == nil {
			return
		}
		prog.begin("baseline/raw Appender")
		a, err := nan, error(nil)
		dir, err := os.MkdirTemp(b.tmp, "appender-") // each pair's Appender writes a fresh database
		if err == nil {
			a, err = appenderRate(dir, b.evs, b.opt.baselineRows)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "raw Appender baseline: %v\n", err)
			a = nan
		}
		gw, app, ratios = append(gw, r.committed), append(app, a), append(ratios, r.committed/a)
		last = r
	}
	committed, appMed, ratio := median(gw), median(app), median(ratios)

	bres := loadBare("batched/bare fasthttp", last.spec)
	prog.begin("baseline/read_ndjson")
	rn, err := readNDJSONRate(b.tmp, b.evs, b.opt.baselineRows)
	if err != nil {
		fmt.Fprintf(os.Stderr, "read_ndjson baseline: %v\n", err)
		rn = nan
	}
	na := ""
	if math.IsNaN(committed) {
		na = "rows not counted"
	}
	b.add(figure{scenario: sc, metric: "committed rows/s vs raw Appender", suffix: "rows/s", value: committed, na: na,
		base: appMed, baseName: "raw Appender", ratio: ratio, pairs: len(ratios), goal: "ratio ≥ 0.7", met: judge(ratio, ratio >= 0.7)})
	b.add(figure{scenario: sc, metric: "committed rows/s vs read_ndjson", suffix: "rows/s", value: committed, na: na,
		base: rn, baseName: "read_ndjson"})
	b.add(figure{scenario: sc, metric: "acked rows/s vs HTTP ceiling", suffix: "rows/s", value: rate(last.res.rows, last.res.elapsed),
		base: rate(bres.rows, bres.elapsed), baseName: "bare fasthttp"})
	b.add(figure{scenario: sc, metric: "rows counted (" + last.how + ") vs acked, last pair", unit: unitCount, value: last.counted, na: na,
		base: float64(last.acked), baseName: "acked", goal: "= acked", met: judge(last.counted, int64(last.counted) == last.acked)})
	b.addFailed(sc, "failed requests", last.res)
	b.add(generatorFigure(sc, last.res, bres))
}

// batchedRun is one run of the batched load against a fresh server.
type batchedRun struct {
	spec      loadSpec
	res       *loadResult
	committed float64 // rows/s; NaN if not counted
	counted   float64 // rows; NaN if not counted
	acked     int64
	how       string
}

// batchedOnce runs the batched load once against a fresh server (the i-th
// of the pairs); nil if it could not run (recorded as failed).
func (b *bench) batchedOnce(sc string, i int) *batchedRun {
	g, id, tgt := b.setupN(sc, i, batchConns)
	if g == nil {
		return nil
	}
	defer g.stop()
	spec := loadSpec{conns: batchConns, duration: b.opt.duration, uri: insertEvents, bodies: b.batchBodies, rowsPer: batchRows}
	res := load(sc, tgt, spec)
	prog.begin("batched/final flush")
	// One more insert with wait: it flushes the table's whole buffer, so
	// its ack is the commit of every row acked before it.
	code, body, err := post(tgt, insertEvents+"?wait=true", b.singleBodies[0], "")
	end := time.Now()
	if err != nil || code != http.StatusOK {
		b.fail(sc, fmt.Errorf("final insert with wait=true: %d %s %v", code, body, err))
		return nil
	}
	r := &batchedRun{spec: spec, res: res, acked: res.rows + 1, committed: nan, counted: nan}
	n, how, countErr := b.count(g, tgt, id, "events")
	r.how = how
	if countErr != nil {
		fmt.Fprintf(os.Stderr, "%s: counting rows: %v\n", sc, countErr)
	} else {
		r.committed, r.counted = rate(n, end.Sub(res.start)), float64(n)
	}
	return r
}

// median of vs (NaN if any is NaN or there is none).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return nan
	}
	s := slices.Clone(vs)
	for _, v := range s {
		if math.IsNaN(v) {
			return nan
		}
	}
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// single: one event per request from 64 connections; requests/s and ack
// latency against the bare HTTP ceiling and against -durability none,
// alternated -pairs times (durable, none, bare, durable, ...); each ratio is
// the median of the rounds' ratios, each other figure the median of its
// rounds.
func (b *bench) single() {
	const sc = "single"
	spec := loadSpec{conns: singleConns, duration: b.opt.duration, uri: insertEvents, bodies: b.singleBodies, rowsPer: 1, latency: true}
	var (
		dgs, bss, nrs, rBare, rNone       []float64
		p50, p99, p999, bp50, bp99, bp999 []float64
		n50, n99                          []float64
		res, bres                         *loadResult
		none                              *loadResult
		noneNA                            string
	)
	for i := range b.opt.pairs {
		g, _, tgt := b.setupN(sc, i, singleConns)
		if g == nil {
			return
		}
		res = load(sc, tgt, spec)
		// Stop it now: its last flushes would take CPU from the runs below.
		if err := g.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: stop server: %v\n", sc, err)
		}
		none, noneNA = b.singleNone(spec, i)
		bres = loadBare("single/bare fasthttp", spec)
		dg, bs, nr := rate(res.reqs, res.elapsed), rate(bres.reqs, bres.elapsed), nan
		if none != nil {
			nr = rate(none.reqs, none.elapsed)
			n50, n99 = append(n50, ms(none.lat.quantile(0.5))), append(n99, ms(none.lat.quantile(0.99)))
		} else {
			n50, n99 = append(n50, nan), append(n99, nan)
		}
		dgs, bss, nrs = append(dgs, dg), append(bss, bs), append(nrs, nr)
		rBare, rNone = append(rBare, dg/bs), append(rNone, dg/nr)
		p50, p99, p999 = append(p50, ms(res.lat.quantile(0.5))), append(p99, ms(res.lat.quantile(0.99))), append(p999, ms(res.lat.quantile(0.999)))
		bp50, bp99, bp999 = append(bp50, ms(bres.lat.quantile(0.5))), append(bp99, ms(bres.lat.quantile(0.99))), append(bp999, ms(bres.lat.quantile(0.999)))
	}
	dg, rb, rn := median(dgs), median(rBare), median(rNone)
	b.add(figure{scenario: sc, metric: "requests/s", suffix: "req/s", value: dg, base: median(bss), baseName: "bare fasthttp",
		ratio: rb, pairs: len(rBare), goal: "ratio ≥ 0.5", met: judge(rb, rb >= 0.5)})
	for _, q := range []struct {
		name    string
		v, base []float64
	}{{"p50", p50, bp50}, {"p99", p99, bp99}, {"p99.9", p999, bp999}} {
		v := median(q.v)
		f := figure{scenario: sc, metric: "ack latency " + q.name, unit: unitMs, value: v, base: median(q.base), baseName: "bare fasthttp"}
		if q.name == "p99" {
			f.goal, f.met = "< 10 ms", judge(v, v < 10)
		}
		b.add(f)
	}
	noneName := "-durability none"
	if none == nil {
		noneName = "n/a (" + noneNA + ")"
	}
	b.add(figure{scenario: sc, metric: "requests/s durable vs none", suffix: "req/s", value: dg, base: median(nrs), baseName: noneName,
		ratio: rn, pairs: len(rNone), goal: "ratio ≥ 0.8", met: judge(rn, rn >= 0.8)})
	b.add(figure{scenario: sc, metric: "ack latency p50 durable vs none", unit: unitMs, value: median(p50), base: median(n50), baseName: noneName})
	b.add(figure{scenario: sc, metric: "ack latency p99 durable vs none", unit: unitMs, value: median(p99), base: median(n99), baseName: noneName})
	b.addFailed(sc, "failed requests, last round", res)
	b.addFailed(sc, "failed requests, -durability none, last round", none)
	b.add(generatorFigure(sc, res, bres))
}

// singleNone runs spec against another child server (the i-th), with a fresh data
// directory, started with -durability none: acked once buffered in memory,
// no write-ahead log. It returns the load's result, or nil and why not.
func (b *bench) singleNone(spec loadSpec, i int) (*loadResult, string) {
	const sc = "single/durability none"
	if b.remote != nil {
		return nil, "-url: no second server to start"
	}
	if setsDurability(b.extra) {
		return nil, "-server-flags sets -durability"
	}
	extra := append(slices.Clip(b.extra), "-durability", "none")
	g, err := startServer(b.bin, b.tmp, "single-none-"+strconv.Itoa(i), extra)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", sc, err)
		return nil, errNA(err)
	}
	defer g.stop()
	_, key, err := g.createTenant("bench_single_none", b.opt.plan)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", sc, err)
		return nil, errNA(err)
	}
	return load(sc, target{hc: newHostClient(g.addr, singleConns), key: key}, spec), ""
}

// setsDurability reports whether the server flags choose -durability
// themselves, which would make the durable vs none comparison meaningless.
func setsDurability(flags []string) bool {
	for _, f := range flags {
		name, _, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if strings.HasPrefix(f, "-") && name == "durability" {
			return true
		}
	}
	return false
}

// generatorFigure shows that the load generator is not what limits the
// gateway: the requests/s it pushed to the bare server (which shares its
// process and CPU) and its own allocations per request.
func generatorFigure(sc string, res, bare *loadResult) figure {
	return figure{scenario: sc, metric: fmt.Sprintf("load generator allocs/request (it pushed %s req/s to bare fasthttp)",
		thousands(int64(rate(bare.reqs, bare.elapsed)))), unit: unitFloat, value: res.allocsPerReq, base: nan}
}

// tenants: small batches to N tenants round-robin; aggregate committed rows/s
// and the server's peak memory.
func (b *bench) tenants() {
	const sc = "tenants"
	g, err := b.server(sc)
	if err != nil {
		b.fail(sc, err)
		return
	}
	defer g.stop()
	nt := b.opt.tenants
	keys := make([]string, nt)
	prog.begin("tenants/create")
	err = forEach(8, nt, func(i int) error {
		_, key, err := g.createTenant("bench_t"+strconv.Itoa(i), b.opt.plan)
		keys[i] = key
		return err
	})
	if err != nil {
		b.fail(sc, err)
		return
	}
	_, idle, memErr := g.memory()

	// Sample RSS while loading: the peak and whether it still grows.
	type sample struct {
		at  time.Duration
		rss int64
	}
	var samples []sample
	stopMem := make(chan struct{})
	memDone := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(memDone)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopMem:
				return
			case <-t.C:
			}
			if _, rss, err := g.memory(); err == nil {
				samples = append(samples, sample{time.Since(start), rss})
			}
		}
	}()
	spec := loadSpec{conns: tenantConns, duration: b.opt.duration, uri: insertEvents, bodies: b.tenantBodies, rowsPer: tenantRows, keys: keys}
	res := load(sc, target{hc: newHostClient(g.addr, tenantConns)}, spec)
	// One insert with wait per tenant: its ack is the commit of everything
	// the tenant was sent.
	prog.begin("tenants/final flush")
	flushErr := forEach(tenantConns, nt, func(i int) error {
		code, body, err := post(g.admin, insertEvents+"?wait=true", b.singleBodies[i%len(b.singleBodies)], keys[i])
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("final insert with wait: HTTP %d: %s", code, body)
		}
		return err
	})
	end := time.Now()
	close(stopMem)
	<-memDone
	committed, na := rate(res.rows+int64(nt), end.Sub(res.start)), ""
	if flushErr != nil {
		// Memory and the acked rate still say something.
		fmt.Fprintf(os.Stderr, "%s: %v\n", sc, flushErr)
		committed, na = nan, "final wait=true insert failed: "+oneLine(flushErr.Error())
	}
	hwm, _, err := g.memory()
	memErr = cmp.Or(memErr, err)
	app, _ := b.appenderBaseline()
	b.add(figure{scenario: sc, metric: fmt.Sprintf("committed rows/s, %d tenants", nt), suffix: "rows/s", value: committed, na: na,
		base: app, baseName: "raw Appender, 1 table"})
	b.add(figure{scenario: sc, metric: "acked rows/s during load", suffix: "rows/s", value: rate(res.rows, res.elapsed), base: nan})
	if memErr != nil {
		b.add(figure{scenario: sc, metric: "server peak RSS", unit: unitMiB, value: nan, na: oneLine(memErr.Error()), base: nan, goal: "bounded"})
	} else {
		// Bounded: the peak of the second half of the load is within 10%
		// of the peak of the first half.
		var first, second int64
		for _, s := range samples {
			if s.at < res.elapsed/2 {
				first = max(first, s.rss)
			} else {
				second = max(second, s.rss)
			}
		}
		growth := nan
		if first > 0 {
			growth = float64(second)/float64(first) - 1
		}
		b.add(figure{scenario: sc, metric: "server peak RSS (VmHWM)", unit: unitMiB, value: float64(hwm),
			base: float64(idle), baseName: "RSS before load"})
		b.add(figure{scenario: sc, metric: "peak RSS growth, 2nd half of load vs 1st", unit: unitPct, value: growth,
			base: nan, goal: "≤ 10% (bounded)", met: judge(growth, growth <= 0.10)})
	}
	b.addFailed(sc, "failed requests", res)
}

// forEach calls f(i) for every i in [0, n) from workers goroutines, each
// taking the next i, and counts each success on the progress line. A worker
// stops at its first error; forEach returns the first of those.
func forEach(workers, n int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  atomic.Int64
	)
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
					return
				}
				prog.reqs.Add(1)
			}
		})
	}
	wg.Wait()
	return first
}

// querySQL makes a 1-million-row result shaped like the events table from
// range(): the result encoding and streaming are measured, not a table scan
// that depends on how much the other scenarios ingested.
const querySQL = `select i as id, 'user_' || (i % 5000) as "user", 'click' as event,
 timestamptz '2026-03-01 12:00:00+00' + to_milliseconds(i * 7) as ts,
 'https://shop.example.com/p/' || (i % 20000) || '?ref=home' as url,
 'https://news.ycombinator.com/' as referrer, 's-' || (i * 2654435761 % 1099511627776) as session_id,
 'DE' as country, i % 120000 as duration_ms,
 ('{"button":"btn_' || (i % 40) || '","plan":"pro","ab":true,"n":' || (i % 100) || '}')::JSON as props
 from range(1000000) t(i)`

// query: a 1-million-row result as JSON and CSV; MB/s and time to first
// byte, against DuckDB's own COPY TO a file.
func (b *bench) query() {
	const sc = "query"
	g, _, tgt := b.setup(sc, 2)
	if g == nil {
		return
	}
	defer g.stop()
	// Every figure is n/a if the query API is absent or fails select 1.
	probeNA := ""
	if _, err := queryJSON(tgt, "select 1 as n"); errors.Is(err, errNoQueryAPI) {
		probeNA = "query API absent"
	} else if err != nil {
		probeNA = errNA(err)
	}

	// Time to first byte of a trivial query: the fixed cost of every query,
	// run by DuckDB (each request's text differs by a comment, so the result
	// cache misses) and answered from the result cache (the same text).
	for _, v := range []struct {
		name string
		vary bool
	}{{"select 1, cache miss", true}, {"select 1, cache hit", false}} {
		prog.begin("query/" + v.name)
		var p50, p99 float64 = nan, nan
		ttfbNA, ttfbName := probeNA, v.name
		if probeNA == "" {
			samples, err := selectOneTTFB(g.addr, tgt.key, b.opt.duration, v.vary)
			if len(samples) > 0 {
				p50, p99 = ms(quantileSorted(samples, 0.5)), ms(quantileSorted(samples, 0.99))
				ttfbName = fmt.Sprintf("%s, %s sequential requests", v.name, thousands(int64(len(samples))))
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %s: %v\n", sc, v.name, err)
				if len(samples) == 0 {
					ttfbNA = errNA(err)
				} else {
					ttfbName += ", stopped by an error"
				}
			}
		}
		b.add(figure{scenario: sc, metric: "time to first byte p50, " + ttfbName, unit: unitMs, value: p50, na: ttfbNA, base: nan})
		b.add(figure{scenario: sc, metric: "time to first byte p99, " + ttfbName, unit: unitMs, value: p99, na: ttfbNA, base: nan})
	}

	for _, format := range []string{"json", "csv"} {
		prog.begin("query/" + format)
		var mbps, ttfb float64 = nan, nan
		na := probeNA
		if na == "" {
			r, err := streamQuery(g.addr, tgt.key, querySQL, format)
			switch {
			case err != nil:
				na = errNA(err)
			case r.lines < queryRows:
				na = fmt.Sprintf("only %d lines of %d rows", r.lines, queryRows)
			default:
				mbps, ttfb = float64(r.bytes)/1e6/r.total.Seconds(), ms(r.ttfb)
			}
		}
		prog.begin("baseline/COPY " + format)
		cp, _, err := copyRate(b.tmp, querySQL, format)
		if err != nil {
			fmt.Fprintf(os.Stderr, "COPY TO %s baseline: %v\n", format, err)
			cp = nan
		}
		b.add(figure{scenario: sc, metric: format + ", 1M rows", unit: unitMBps, value: mbps, na: na, base: cp, baseName: "DuckDB COPY TO file"})
		b.add(figure{scenario: sc, metric: format + ", time to first byte", unit: unitMs, value: ttfb, na: na, base: nan})
	}
}

// ttfbRequests is the most `select 1` requests the query scenario times
// (fewer if -duration is over first): enough for a stable p99.
const ttfbRequests = 2000

// selectOneTTFB sends `select 1` through the query API, one request after
// the other on one kept-alive net/http connection (the client of the 1M-row
// rows), until ttfbRequests or d is over. It returns each request's time
// from sending to the first body byte, sorted, and the error that stopped
// it early, if any. Every body must equal the first. With vary, each
// request's SQL differs by a trailing comment, so that the result cache
// misses and DuckDB runs it; without, every request after the first is a
// cache hit.
func selectOneTTFB(addr, key string, d time.Duration, vary bool) ([]time.Duration, error) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
	defer c.CloseIdleConnections()
	req, err := queryRequest(addr, key, "select 1 as n", "json")
	if err != nil {
		return nil, err
	}
	var first []byte
	buf := make([]byte, 4096)
	sent := 0
	one := func() (time.Duration, error) {
		if sent++; vary {
			// A comment makes the text new: the result cache misses.
			if req, err = queryRequest(addr, key, "select 1 as n -- "+strconv.Itoa(sent), "json"); err != nil {
				return 0, err
			}
		}
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if err := statusError(resp); err != nil {
			return 0, err
		}
		n, err := io.ReadAtLeast(resp.Body, buf, 1)
		ttfb := time.Since(start)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return 0, err
		}
		// Read the rest, so the connection is reused.
		for err == nil && n < len(buf) {
			var k int
			k, err = resp.Body.Read(buf[n:])
			n += k
		}
		if err != io.EOF && err != io.ErrUnexpectedEOF {
			if err == nil {
				err = fmt.Errorf("result of select 1 longer than %d bytes", len(buf))
			}
			return 0, err
		}
		if first == nil {
			first = append([]byte{}, buf[:n]...)
		} else if !bytes.Equal(buf[:n], first) {
			return 0, fmt.Errorf("result of select 1 changed: %q, first %q", buf[:n], first)
		}
		return ttfb, nil
	}
	// Warm up: open the connection, prepare whatever the server caches.
	for range 10 {
		if _, err := one(); err != nil {
			return nil, err
		}
	}
	if !bytes.Contains(first, []byte(`"n":1`)) {
		return nil, fmt.Errorf("select 1 as n returned %q", first)
	}
	samples := make([]time.Duration, 0, ttfbRequests)
	deadline := time.Now().Add(d)
	for len(samples) < ttfbRequests && time.Now().Before(deadline) {
		t, err := one()
		if err != nil {
			slices.Sort(samples)
			return samples, err
		}
		samples = append(samples, t)
		prog.reqs.Add(1)
	}
	slices.Sort(samples)
	return samples, nil
}

// quantileSorted returns the q-quantile of sorted samples (nearest rank).
func quantileSorted(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// streamResult is what reading one query result measured.
type streamResult struct {
	bytes, lines int64
	ttfb, total  time.Duration
}

// streamQuery reads one query result through net/http, timing the first
// byte and counting newlines; an error marker at the end is an error.
func streamQuery(addr, key, sql, format string) (*streamResult, error) {
	req, err := queryRequest(addr, key, sql, format)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := statusError(resp); err != nil {
		return nil, err
	}
	r := &streamResult{}
	buf := make([]byte, 256<<10)
	var last []byte
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if r.bytes == 0 {
				r.ttfb = time.Since(start)
			}
			r.bytes += int64(n)
			for _, c := range buf[:n] {
				if c == '\n' {
					r.lines++
				}
			}
			last = append(last[:0], buf[max(0, n-200):n]...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	r.total = time.Since(start)
	if bytes.Contains(last, []byte(`{"error":`)) || bytes.Contains(last, []byte("#error: ")) {
		return nil, fmt.Errorf("result ends with an error marker: %s", last)
	}
	return r, nil
}

// queryRequest is a net/http GET of sql in format from the query API at addr
// (host:port), without flush, with API key key.
func queryRequest(addr, key, sql, format string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+queryURI(sql, format), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-API-KEY", key)
	return req, nil
}

// statusError is nil for a 200, else an error with the status and the start
// of the body.
func statusError(resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
	return fmt.Errorf("HTTP %d: %s", resp.StatusCode, msg)
}
