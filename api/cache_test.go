package api

import (
	"net/url"
	"testing"

	"duckgate/query"
)

// The result cache through the whole server: the batcher's commits bump
// the tenant's data version, so a cached answer is never older than what
// DuckDB holds, and flush=true sees every acknowledged row.
func TestQueryCacheFollowsCommits(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{cacheBytes: 1 << 20})
	_, _, key, err := e.tenants.CreateTenant("shop", "enterprise")
	if err != nil {
		t.Fatal(err)
	}
	_, _, other, err := e.tenants.CreateTenant("other", "enterprise")
	if err != nil {
		t.Fatal(err)
	}
	insert := func(k, body string) {
		t.Helper()
		if r := e.do("POST", "/api/data/insert/orders", []byte(body), "X-API-KEY", k); r.status != 200 {
			t.Fatalf("insert: %d %s", r.status, r.body)
		}
	}
	ask := func(k, want, cache string) {
		t.Helper()
		q := url.Values{"query": {"select count(*) as n, sum(amount) as total from orders"}, "flush": {"true"}, "format": {"csv"}}
		r := e.do("GET", "/api/data/query?"+q.Encode(), nil, "X-API-KEY", k)
		if r.status != 200 || string(r.body) != "n,total\r\n"+want+"\r\n" || r.header[query.CacheHeader] != cache {
			t.Fatalf("query: %d %q %s=%q, want %q %s", r.status, r.body, query.CacheHeader, r.header[query.CacheHeader], want, cache)
		}
	}
	insert(key, `{"amount":5}`)
	insert(other, `{"amount":1}`)
	ask(key, "1,5", "miss")
	ask(key, "1,5", "hit")
	ask(other, "1,1", "miss")

	// Acknowledged, not yet committed: flush=true commits it, which bumps
	// the version, so the answer is computed again.
	insert(key, `[{"amount":7},{"amount":8}]`)
	ask(key, "3,20", "miss")
	ask(key, "3,20", "hit")
	ask(other, "1,1", "hit")

	// A schema change is a commit too.
	insert(key, `{"amount":1.5,"note":"x"}`)
	ask(key, "4,21.5", "miss")
}

// A pin changes a column's type on the tenant's writer, outside an insert:
// it bumps the data version like a commit, so the cached answer from
// before the pin is not served after it.
func TestQueryCacheFollowsPins(t *testing.T) {
	e := newAdminEnv(t, adminEnvConfig{cacheBytes: 1 << 20})
	_, _, key, err := e.tenants.CreateTenant("shop", "enterprise")
	if err != nil {
		t.Fatal(err)
	}
	if r := e.do("POST", "/api/data/insert/orders?wait=true", []byte(`{"amount":5}`), "X-API-KEY", key); r.status != 200 {
		t.Fatalf("insert: %d %s", r.status, r.body)
	}
	ask := func(want, cache string) {
		t.Helper()
		q := url.Values{"query": {"select typeof(amount) as t from orders"}, "format": {"csv"}}
		r := e.do("GET", "/api/data/query?"+q.Encode(), nil, "X-API-KEY", key)
		if r.status != 200 || string(r.body) != "t\r\n"+want+"\r\n" || r.header[query.CacheHeader] != cache {
			t.Fatalf("query: %d %q %s=%q, want %q %s", r.status, r.body, query.CacheHeader, r.header[query.CacheHeader], want, cache)
		}
	}
	ask("BIGINT", "miss")
	ask("BIGINT", "hit")
	if r := e.do("PUT", "/api/tables/orders/columns/amount", []byte(`{"type":"VARCHAR"}`), "X-API-KEY", key); r.status != 200 {
		t.Fatalf("pin: %d %s", r.status, r.body)
	}
	ask("VARCHAR", "miss")
}
