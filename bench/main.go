// Command bench is duckgate's end-to-end load generator (issue #8). It
// measures the gateway against its ceilings in the same run and prints a
// Markdown table: every figure beside its baseline.
//
//	go run ./bench [-scenario batched|single|visibility|tenants|query|all]
//	               [-url http://host:port -admin-key K] [-duration 10s] [-quick]
//
// Without -url it builds ./cmd/duckgate, runs it as a child on a free
// loopback port with a temporary data directory (a fresh server per
// scenario), and stops it with SIGTERM at the end. See bench/README.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// options are the command-line flags.
type options struct {
	scenario     string
	url          string
	adminKey     string
	duration     time.Duration
	quick        bool
	serverFlags  string
	serverBin    string
	serverRev    string
	plan         string
	tenants      int
	baselineRows int
	keep         bool
	pairs        int
	visTenants   int
	visEvery     time.Duration
}

var scenarios = []string{"batched", "single", "visibility", "tenants", "query"}

func main() {
	var o options
	flag.StringVar(&o.scenario, "scenario", "all", "what to run: "+strings.Join(scenarios, ", ")+" or all")
	flag.StringVar(&o.url, "url", "", "a running duckgate (http://host:port) instead of building and starting one; needs -admin-key")
	flag.StringVar(&o.adminKey, "admin-key", "", "admin key of the -url server, to create tenants")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "load time of each scenario (default 10s; -quick: 3s)")
	flag.BoolVar(&o.quick, "quick", false, "short run: 3s per scenario, 100 tenants, 300,000-row baselines")
	flag.StringVar(&o.serverFlags, "server-flags", "", "extra flags for the child server, space separated, e.g. \"-batcher.flush-interval 500ms\"")
	flag.StringVar(&o.serverBin, "server-bin", "", "use this duckgate binary instead of building ./cmd/duckgate")
	flag.StringVar(&o.serverRev, "server-rev", "", "build the server from this git revision (e.g. HEAD) instead of the working tree")
	flag.StringVar(&o.plan, "plan", "enterprise", "plan of the tenants the scenarios create; the default built-in enterprise plan has no rate limit, so the gateway is measured, not its limiter")
	flag.IntVar(&o.tenants, "tenants", 0, "tenants in the tenants scenario (default 1000; -quick: 100)")
	flag.IntVar(&o.baselineRows, "baseline-rows", 0, "rows the raw Appender and read_ndjson baselines write (default 1,000,000; -quick: 300,000)")
	flag.IntVar(&o.pairs, "pairs", 3, "times the batched and single scenarios alternate duckgate and its baseline (A, B, A, B, ...); their ratios are the median of the pairs' (at least 1)")
	flag.IntVar(&o.visTenants, "vis-tenants", 100, "tenants sending in the visibility scenario (issue 15: 100; 1,000 at -vis-every 1s for the many-tenant case)")
	flag.DurationVar(&o.visEvery, "vis-every", 100*time.Millisecond, "each visibility tenant sends one event this often (issue 15: 100ms, 10 events/s)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (server logs and data) for inspection")
	flag.Parse()

	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick && !set["duration"] {
		o.duration = 3 * time.Second
	}
	if o.tenants <= 0 {
		o.tenants = 1000
		if o.quick {
			o.tenants = 100
		}
	}
	o.pairs = max(o.pairs, 1)
	if o.baselineRows <= 0 {
		o.baselineRows = 1_000_000
		if o.quick {
			o.baselineRows = 300_000
		}
	}
	if err := runBench(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func runBench(o options) error {
	todo := scenarios
	if o.scenario != "all" {
		ok := false
		for _, s := range scenarios {
			ok = ok || s == o.scenario
		}
		if !ok {
			return fmt.Errorf("-scenario %q: want one of %s or all", o.scenario, strings.Join(scenarios, ", "))
		}
		todo = []string{o.scenario}
	}
	if o.url != "" && o.adminKey == "" {
		return fmt.Errorf("-url needs -admin-key to create tenants")
	}
	tmp, err := os.MkdirTemp("", "duckgate-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	b := &bench{opt: o, tmp: tmp, extra: strings.Fields(o.serverFlags)}
	startedAt := time.Now()
	hdr := header(o, startedAt) // before the build: HEAD may move while we run
	switch {
	case o.url != "":
		if b.remote, err = remoteServer(o.url, o.adminKey); err != nil {
			return err
		}
	case o.serverBin != "":
		b.bin = o.serverBin
	default:
		modDir, err := moduleDir()
		if err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "building ./cmd/duckgate …")
		if b.bin, err = buildServer(modDir, tmp, o.serverRev); err != nil {
			return err
		}
	}

	// Bodies are built once; the load loops only point at them.
	b.evs = genEvents(1, 16*batchRows, 1)
	b.batchBodies = bodies(b.evs, batchRows)
	b.singleBodies = bodies(b.evs[:4096], 1)
	b.tenantBodies = bodies(b.evs, tenantRows)

	stop := make(chan struct{})
	go prog.report(stop)
	for _, s := range todo {
		fmt.Fprintf(os.Stderr, "== %s\n", s)
		switch s {
		case "batched":
			b.batched()
		case "single":
			b.single()
		case "visibility":
			b.visibility()
		case "tenants":
			b.tenants()
		case "query":
			b.query()
		}
	}
	close(stop)
	fmt.Fprintf(os.Stderr, "done in %s\n", time.Since(startedAt).Round(time.Second))

	fmt.Println(hdr)
	fmt.Println()
	writeTable(os.Stdout, b.figs)
	return nil
}

// header is the line above the table: when, what and where.
func header(o options, at time.Time) string {
	rev := "unknown"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		rev = strings.TrimSpace(string(out))
	}
	target := "child server built from the working tree"
	if err := exec.Command("git", "diff", "--quiet", "HEAD", "--", ".", ":!bench").Run(); err != nil {
		target += " (uncommitted changes outside bench/)"
	}
	switch {
	case o.serverRev != "":
		target = "child server built from " + o.serverRev
		if out, err := exec.Command("git", "rev-parse", "--short", o.serverRev).Output(); err == nil {
			target += " = " + strings.TrimSpace(string(out))
		}
	case o.url != "":
		target = o.url
	case o.serverBin != "":
		target = "child server " + o.serverBin
	}
	return fmt.Sprintf("**%s**, commit `%s`, GOMAXPROCS=%d, %d cores, %s/%s, %s; `go run ./bench %s`",
		at.Format("2006-01-02 15:04 MST"), rev, runtime.GOMAXPROCS(0), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH,
		target, strings.Join(os.Args[1:], " "))
}

// moduleDir is the directory of the go.mod this tool runs in.
func moduleDir() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run bench inside the duckgate module (go run ./bench)")
	}
	return filepath.Dir(mod), nil
}
