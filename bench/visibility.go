package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The visibility scenario's load: -vis-tenants tenants each send one event
// every -vis-every (issue 15: 100 tenants × 10 events/s), without wait; the
// first visProbes tenants are polled every visPoll with a query without
// flush, and each of their rows' ack → visible time is recorded.
const (
	visProbes = 10
	visPoll   = 20 * time.Millisecond
)

// visibility: from an insert's ack (no wait) to the row showing in a query
// without flush, with many tenants ingesting at a modest rate.
func (b *bench) visibility() {
	const sc = "visibility"
	naFigs := func(why string) {
		for _, m := range []string{"ack → visible p50", "ack → visible p99"} {
			b.add(figure{scenario: sc, metric: m, unit: unitMs, value: nan, na: why, base: nan, goal: visGoal(m)})
		}
	}
	g, err := b.server(sc)
	if err != nil {
		b.fail(sc, err)
		return
	}
	defer g.stop()
	visTenants, visEvery := max(b.opt.visTenants, visProbes), max(b.opt.visEvery, time.Millisecond)
	keys := make([]string, visTenants)
	prog.begin("visibility/create")
	hc := newHostClient(g.addr, visTenants+visProbes+8)
	const firstID = 1_000_000_000
	perTenant := int(b.opt.duration / visEvery)
	evs := genEvents(firstID, perTenant+1, 11)
	err = forEach(8, visTenants, func(i int) error {
		_, key, err := g.createTenant("bench_vis"+strconv.Itoa(i), b.opt.plan)
		if err != nil {
			return err
		}
		keys[i] = key
		// Create the table first, so polls before the first flush do not fail.
		code, body, err := post(target{hc: hc}, "/api/data/insert/vis?wait=true", ndjson(evs[:1]), key)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("create table vis: HTTP %d: %s", code, body)
		}
		return err
	})
	if err != nil {
		b.fail(sc, err)
		return
	}
	if _, err := queryJSON(target{hc: hc, key: keys[0]}, "select 1 as n"); err != nil {
		if errors.Is(err, errNoQueryAPI) {
			naFigs("query API absent")
			return
		}
		b.fail(sc, err)
		return
	}
	bodies := make([][]byte, perTenant)
	for i := range bodies {
		bodies[i] = ndjson(evs[1+i : 2+i])
	}

	type probe struct {
		acked   []atomic.Int64 // UnixNano of each ack; 0 = not yet
		sent    atomic.Int64   // events sent so far
		visible []time.Duration
		seen    []bool
	}
	probes := make([]*probe, visProbes)
	for i := range probes {
		probes[i] = &probe{acked: make([]atomic.Int64, perTenant), visible: make([]time.Duration, perTenant), seen: make([]bool, perTenant)}
	}
	prog.begin(sc)
	cpu0, _ := g.cpu()
	start := time.Now()
	stopPoll := make(chan struct{})
	var (
		mu    sync.Mutex
		first error
		acked atomic.Int64
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	var polls sync.WaitGroup
	for pi, p := range probes {
		polls.Go(func() {
			tgt := target{hc: hc, key: keys[pi]}
			t := time.NewTicker(visPoll)
			defer t.Stop()
			stop := (<-chan struct{})(stopPoll)
			left := perTenant
			var grace time.Time // after the last send: give up at grace
			for left > 0 {
				select {
				case <-stop:
					stop = nil
					grace = time.Now().Add(5 * time.Second)
				case <-t.C:
				}
				if !grace.IsZero() && time.Now().After(grace) {
					return
				}
				lo := -1
				for i := 0; i < int(p.sent.Load()); i++ {
					if !p.seen[i] && p.acked[i].Load() != 0 {
						lo = i
						break
					}
				}
				if lo < 0 {
					continue
				}
				arr, err := queryJSON(tgt, "select id from vis where id >= "+strconv.FormatInt(evs[1+lo].ID, 10))
				now := time.Now()
				if err != nil {
					fail(err)
					return
				}
				for _, v := range arr {
					i := int(v.GetInt64("id") - evs[1].ID)
					if i < 0 || i >= perTenant || p.seen[i] {
						continue
					}
					at := p.acked[i].Load()
					if at == 0 {
						continue // visible before its ack was recorded: take it next poll
					}
					p.seen[i] = true
					p.visible[i] = now.Sub(time.Unix(0, at))
					left--
				}
			}
		})
	}
	var sends sync.WaitGroup
	for ti := range visTenants {
		sends.Go(func() {
			// Spread the tenants' sends over the interval.
			time.Sleep(visEvery * time.Duration(ti) / time.Duration(visTenants))
			t := time.NewTicker(visEvery)
			defer t.Stop()
			var p *probe
			if ti < visProbes {
				p = probes[ti]
			}
			for i := range perTenant {
				if p != nil {
					p.sent.Store(int64(i + 1))
				}
				code, body, err := post(target{hc: hc}, "/api/data/insert/vis", bodies[i], keys[ti])
				if err != nil || code != http.StatusOK {
					fail(fmt.Errorf("insert: %d %s %v", code, body, err))
					return
				}
				if p != nil {
					p.acked[i].Store(time.Now().UnixNano())
				}
				acked.Add(1)
				prog.reqs.Add(1)
				<-t.C
			}
		})
	}
	// Open files, sampled every second during the load: the peak.
	peakFDs := 0
	fdStop := make(chan struct{})
	var fdDone sync.WaitGroup
	fdDone.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			if n, err := g.openFiles(); err == nil {
				peakFDs = max(peakFDs, n)
			}
			select {
			case <-fdStop:
				return
			case <-t.C:
			}
		}
	})
	sends.Wait()
	elapsed := time.Since(start)
	close(fdStop)
	fdDone.Wait()
	cpu1, cpuErr := g.cpu()
	close(stopPoll)
	polls.Wait()
	if first != nil {
		b.fail(sc, first)
		return
	}
	var samples []time.Duration
	want := 0
	for _, p := range probes {
		want += perTenant
		for i := range p.visible {
			if p.seen[i] {
				samples = append(samples, p.visible[i])
			}
		}
	}
	if len(samples) == 0 {
		naFigs("no row became visible")
		return
	}
	slices.Sort(samples)
	pick := func(q float64) float64 {
		return ms(samples[min(len(samples)-1, int(q*float64(len(samples))))])
	}
	base := fmt.Sprintf("%d tenants × %g/s, poll every %d ms", visTenants, float64(time.Second)/float64(visEvery), visPoll.Milliseconds())
	for _, m := range []struct {
		name string
		v    float64
	}{{"ack → visible p50", pick(0.5)}, {"ack → visible p99", pick(0.99)}} {
		f := figure{scenario: sc, metric: m.name, unit: unitMs, value: m.v, base: nan, baseName: base, goal: visGoal(m.name)}
		if f.goal != "" {
			f.met = judge(m.v, m.v <= 250)
		}
		b.add(f)
	}
	b.add(figure{scenario: sc, metric: "rows seen of sent (probed tenants)", unit: unitCount, value: float64(len(samples)), base: float64(want), baseName: "sent",
		goal: "= sent", met: judge(1, len(samples) == want)})
	b.add(figure{scenario: sc, metric: "acked events/s", suffix: "events/s", value: rate(acked.Load(), elapsed), base: nan})
	if hwm, _, err := g.memory(); err == nil {
		b.add(figure{scenario: sc, metric: "server peak RSS (VmHWM)", unit: unitMiB, value: float64(hwm), base: nan})
	}
	if peakFDs > 0 {
		b.add(figure{scenario: sc, metric: "server open files, peak during the load", unit: unitCount, value: float64(peakFDs), base: nan})
	}
	if cpuErr == nil && cpu1 > cpu0 {
		b.add(figure{scenario: sc, metric: "server CPU during the load, cores", unit: unitFloat, value: (cpu1 - cpu0).Seconds() / elapsed.Seconds(), base: nan})
	} else if cpuErr != nil {
		fmt.Fprintf(os.Stderr, "%s: server CPU: %v\n", sc, cpuErr)
	}
}

func visGoal(metric string) string {
	if strings.HasSuffix(metric, "p99") {
		return "≤ 250 ms"
	}
	return ""
}
