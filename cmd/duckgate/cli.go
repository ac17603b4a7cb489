package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	json "github.com/goccy/go-json"
)

// The tenant and key subcommands call a running server's admin API and
// print its JSON answer. They only map arguments to HTTP calls: every rule
// (names, plans, scopes, confirmation) is the server's.

const cliUsage = `usage:
  duckgate tenant create <name> [-plan free|pro|enterprise]
  duckgate tenant list
  duckgate tenant get <tenant_id>
  duckgate tenant plan <tenant_id> <plan>
  duckgate tenant suspend <tenant_id>
  duckgate tenant resume <tenant_id>
  duckgate tenant delete <tenant_id> -confirm
  duckgate key create <tenant_id> [-scope ingest|query|full]
  duckgate key list <tenant_id>
  duckgate key revoke <tenant_id> <key_id>

every command takes -addr (default $DUCKGATE_ADDR or http://127.0.0.1:8080)
and -admin-key (default $DUCKGATE_ADMIN_KEY)`

// cliRequest is one admin API call.
type cliRequest struct {
	method, path string
	body         any
}

// runCLI runs a tenant or key command (args[0] is "tenant" or "key") and
// returns the exit code: 0 done, 1 the server refused or failed, 2 bad usage.
func runCLI(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) < 2 {
		fmt.Fprintln(stderr, cliUsage)
		return 2
	}
	fs := flag.NewFlagSet("duckgate "+args[0]+" "+args[1], flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr(getenv, "DUCKGATE_ADDR", "http://127.0.0.1:8080"), "server address: host:port or http(s)://host:port")
	adminKey := fs.String("admin-key", "", "admin API key (default $DUCKGATE_ADMIN_KEY)")
	plan := fs.String("plan", "", "plan of a new tenant (server default: free)")
	scope := fs.String("scope", "full", "scope of a new key: ingest, query or full")
	confirm := fs.Bool("confirm", false, "confirm deleting a tenant and all its data")
	timeout := fs.Duration("timeout", time.Minute, "HTTP timeout")
	pos, err := parseInterspersed(fs, args[2:])
	if err != nil {
		return 2
	}
	req, err := cliRoute(args[0], args[1], pos, *plan, *scope, *confirm)
	if err != nil {
		fmt.Fprintf(stderr, "duckgate: %v\n\n%s\n", err, cliUsage)
		return 2
	}
	if *adminKey == "" {
		*adminKey = getenv("DUCKGATE_ADMIN_KEY")
	}
	if *adminKey == "" {
		fmt.Fprintln(stderr, "duckgate: no admin key: pass -admin-key or set DUCKGATE_ADMIN_KEY")
		return 2
	}
	status, body, err := cliDo(&http.Client{Timeout: *timeout}, serverURL(*addr), *adminKey, req)
	if err != nil {
		fmt.Fprintln(stderr, "duckgate:", err)
		return 1
	}
	out := stdout
	if status >= 300 {
		out = stderr
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "", "  ") == nil {
		body = append(bytes.TrimSpace(pretty.Bytes()), '\n')
	}
	_, _ = out.Write(body)
	if status >= 300 {
		fmt.Fprintf(stderr, "duckgate: %s %s: HTTP %d\n", req.method, req.path, status)
		return 1
	}
	return 0
}

// cliRoute maps a command to its admin API call.
func cliRoute(noun, verb string, pos []string, plan, scope string, confirm bool) (cliRequest, error) {
	need := func(n int, names string) error {
		if len(pos) != n {
			return fmt.Errorf("%s %s takes %s", noun, verb, names)
		}
		return nil
	}
	tenants := "/api/admin/tenants"
	switch noun + " " + verb {
	case "tenant create":
		if err := need(1, "<name>"); err != nil {
			return cliRequest{}, err
		}
		return cliRequest{"POST", tenants, map[string]string{"name": pos[0], "plan": plan}}, nil
	case "tenant list":
		if err := need(0, "no arguments"); err != nil {
			return cliRequest{}, err
		}
		return cliRequest{"GET", tenants, nil}, nil
	case "tenant get":
		if err := need(1, "<tenant_id>"); err != nil {
			return cliRequest{}, err
		}
		return cliRequest{"GET", tenants + "/" + url.PathEscape(pos[0]), nil}, nil
	case "tenant plan":
		if err := need(2, "<tenant_id> <plan>"); err != nil {
			return cliRequest{}, err
		}
		return cliRequest{"PATCH", tenants + "/" + url.PathEscape(pos[0]), map[string]string{"plan": pos[1]}}, nil
	case "tenant suspend", "tenant resume":
		if err := need(1, "<tenant_id>"); err != nil {
			return cliRequest{}, err
		}
		return cliRequest{"POST", tenants + "/" + url.PathEscape(pos[0]) + "/" + verb, nil}, nil
	case "tenant delete":
		if err := need(1, "<tenant_id>"); err != nil {
			return cliRequest{}, err
		}
		if !confirm {
			return cliRequest{}, errors.New("tenant delete removes all the tenant's data for good: add -confirm")
		}
		return cliRequest{"DELETE", tenants + "/" + url.PathEscape(pos[0]) + "?confirm=true", nil}, nil
	case "key create":
		if err := need(1, "<tenant_id>"); err != nil {
			return cliRequest{}, err
		}
		return cliRequest{"POST", tenants + "/" + url.PathEscape(pos[0]) + "/keys", map[string]string{"scope": scope}}, nil
	case "key list":
		if err := need(1, "<tenant_id>"); err != nil {
			return cliRequest{}, err
		}
		return cliRequest{"GET", tenants + "/" + url.PathEscape(pos[0]) + "/keys", nil}, nil
	case "key revoke":
		if err := need(2, "<tenant_id> <key_id>"); err != nil {
			return cliRequest{}, err
		}
		return cliRequest{"DELETE", tenants + "/" + url.PathEscape(pos[0]) + "/keys/" + url.PathEscape(pos[1]), nil}, nil
	}
	return cliRequest{}, fmt.Errorf("unknown command %q", noun+" "+verb)
}

// cliDo sends req and returns the status and body of the answer.
func cliDo(c *http.Client, addr, adminKey string, req cliRequest) (int, []byte, error) {
	var body io.Reader
	if req.body != nil {
		b, err := json.Marshal(req.body)
		if err != nil {
			return 0, nil, err
		}
		body = bytes.NewReader(b)
	}
	hr, err := http.NewRequest(req.method, addr+req.path, body)
	if err != nil {
		return 0, nil, err
	}
	hr.Header.Set("X-API-KEY", adminKey)
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(hr)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("read the answer: %w", err)
	}
	return resp.StatusCode, b, nil
}

// parseInterspersed parses flags placed before, between or after the
// positional arguments, which flag.FlagSet alone stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}
