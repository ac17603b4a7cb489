package main

import (
	"cmp"
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// histogram counts latencies in fixed log-linear buckets of about 1.5%
// width (HDR-like): bounded memory whatever the number of samples. It is
// not safe for concurrent use: give each worker one and merge them.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
}

// histBuckets covers 0 to about 2^31 µs (35 minutes); larger values land in
// the last bucket.
const histBuckets = 128 + 25*64

func histIndex(us uint64) int {
	if us < 128 {
		return int(us)
	}
	e := bits.Len64(us) - 7 // us is in [2^(e+6), 2^(e+7))
	i := 128 + (e-1)*64 + int(us>>e) - 64
	return min(i, histBuckets-1)
}

// histValue is the middle of bucket i, in µs.
func histValue(i int) float64 {
	if i < 128 {
		return float64(i)
	}
	e := (i-128)/64 + 1
	m := uint64((i-128)%64 + 64)
	return float64(m<<e) + float64(uint64(1)<<e)/2
}

func (h *histogram) record(d time.Duration) {
	h.counts[histIndex(uint64(d.Microseconds()))]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the q-quantile (0 < q ≤ 1), or 0 without samples.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(histValue(i) * float64(time.Microsecond))
		}
	}
	return time.Duration(histValue(histBuckets-1) * float64(time.Microsecond))
}

// progress is what the stderr progress line shows; the scenario running now
// updates it.
type progress struct {
	scenario atomic.Pointer[string]
	start    atomic.Int64 // UnixNano of the scenario's start
	reqs     atomic.Int64
	rows     atomic.Int64
	errs     atomic.Int64
}

var prog progress

// begin resets the progress line for a new phase.
func (p *progress) begin(name string) {
	p.scenario.Store(&name)
	p.start.Store(time.Now().UnixNano())
	p.reqs.Store(0)
	p.rows.Store(0)
	p.errs.Store(0)
}

// report prints the progress line every second until stop is closed.
func (p *progress) report(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		name := p.scenario.Load()
		if name == nil {
			continue
		}
		el := time.Since(time.Unix(0, p.start.Load())).Truncate(100 * time.Millisecond)
		fmt.Fprintf(os.Stderr, "[%s] %6s  requests=%d rows=%d errors=%d\n", *name, el, p.reqs.Load(), p.rows.Load(), p.errs.Load())
	}
}

// target is an HTTP endpoint the load generator sends to.
type target struct {
	hc  *fasthttp.HostClient
	key string // X-API-KEY; empty for the bare server
}

// newHostClient returns a client for addr (host:port) with room for conns
// connections, reused by all requests of a run.
func newHostClient(addr string, conns int) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                          addr,
		MaxConns:                      conns + 4,
		ReadTimeout:                   90 * time.Second,
		WriteTimeout:                  90 * time.Second,
		MaxIdleConnDuration:           time.Minute,
		MaxResponseBodySize:           64 << 20,
		DisableHeaderNamesNormalizing: true,
		NoDefaultUserAgentHeader:      true,
	}
}

// loadSpec is one closed-loop load: conns workers, each sending its next
// request as soon as the previous one is answered, until the deadline.
type loadSpec struct {
	conns    int
	duration time.Duration
	// uri is the request URI, e.g. "/api/data/insert/events".
	uri string
	// bodies are pre-built; worker w sends bodies[(w+i*conns) % len]. They
	// are set with SetBodyRaw: no copy, no allocation per request.
	bodies [][]byte
	// rowsPer is the rows in each body.
	rowsPer int
	// keys, if set, rotate per request (the tenants scenario); else tgt.key.
	keys []string
	// latency records each successful request's latency.
	latency bool
}

// loadResult is what a load run measured.
type loadResult struct {
	reqs, rows, errs int64
	elapsed          time.Duration
	start, end       time.Time
	lat              histogram
	firstErr         string
	// allocsPerReq is heap allocations in this whole process per request:
	// the load generator's own cost when the server is another process.
	allocsPerReq float64
}

// run drives spec against tgt.
func run(tgt target, spec loadSpec) *loadResult {
	res := &loadResult{}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		next     atomic.Int64 // request counter, for key rotation
		deadline = time.Now().Add(spec.duration)
	)
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	res.start = time.Now()
	for w := 0; w < spec.conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			prepare(req, tgt, fasthttp.MethodPost, spec.uri, "")
			var h histogram
			var reqs, errs int64
			for i := w; time.Now().Before(deadline); i += spec.conns {
				req.SetBodyRaw(spec.bodies[i%len(spec.bodies)])
				if spec.keys != nil {
					req.Header.Set("X-API-KEY", spec.keys[next.Add(1)%int64(len(spec.keys))])
				}
				t0 := time.Now()
				err := tgt.hc.Do(req, resp)
				lat := time.Since(t0)
				if err == nil && resp.StatusCode() == fasthttp.StatusOK {
					reqs++
					prog.reqs.Add(1)
					prog.rows.Add(int64(spec.rowsPer))
					if spec.latency {
						h.record(lat)
					}
					continue
				}
				errs++
				prog.errs.Add(1)
				msg := ""
				if err != nil {
					msg = err.Error()
				} else {
					msg = fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode(), resp.Body())
				}
				mu.Lock()
				if res.firstErr == "" {
					res.firstErr = msg
				}
				mu.Unlock()
				time.Sleep(10 * time.Millisecond) // back off on 503 or a broken connection
			}
			mu.Lock()
			res.reqs += reqs
			res.errs += errs
			res.lat.merge(&h)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.end = time.Now()
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	res.elapsed = res.end.Sub(res.start)
	res.rows = res.reqs * int64(spec.rowsPer)
	if n := res.reqs + res.errs; n > 0 {
		res.allocsPerReq = float64(ms1.Mallocs-ms0.Mallocs) / float64(n)
	}
	return res
}

// prepare sets req up to be sent to tgt: method, URI, host and the API key
// (key, else tgt.key, else none). A POST carries NDJSON.
func prepare(req *fasthttp.Request, tgt target, method, uri, key string) {
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost(tgt.hc.Addr)
	if method == fasthttp.MethodPost {
		req.Header.SetContentType("application/x-ndjson")
	}
	if key = cmp.Or(key, tgt.key); key != "" {
		req.Header.Set("X-API-KEY", key)
	}
}

// post sends one NDJSON body with key (tgt.key if empty) and returns the
// status and body (copied).
func post(tgt target, uri string, body []byte, key string) (int, []byte, error) {
	return send(tgt, fasthttp.MethodPost, uri, body, key)
}

// get sends a GET and returns its status and body (copied).
func get(tgt target, uri string) (int, []byte, error) {
	return send(tgt, fasthttp.MethodGet, uri, nil, "")
}

// send sends one request, waiting up to 90 s, and returns its status and
// body (copied).
func send(tgt target, method, uri string, body []byte, key string) (int, []byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	prepare(req, tgt, method, uri, key)
	if body != nil {
		req.SetBodyRaw(body)
	}
	if err := tgt.hc.DoTimeout(req, resp, 90*time.Second); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), nil
}
