// Package api is duckgate's HTTP server: the route table, API-key
// authentication and scope checks, the one place where an error becomes an
// HTTP status and a JSON body, /healthz, /metrics and pprof.
//
// Direction: api imports the feature packages' handlers (ingest, query,
// share, webhook, admin) and calls them; no feature package imports api.
// Package cmd builds the handlers and hands them in through Config. A
// handler takes the request and, for a tenant's route, the tenant the key
// authenticated; it returns either a value, which api answers as JSON with
// the status the handler set (200 unless it set another), or an error
// wrapping a documented sentinel error of its package, which statusOf maps
// to a status and writeError answers as {"error":"..."}. Handlers that stream
// (query results, share downloads, exports) write their own answer and handle errors
// after the first byte themselves.
//
// A request walks: socket → Server.Handler (route, key, scope, tenant
// status) → one feature handler → batcher or query. Until SetReady (the
// write-ahead log is recovered) every route but /healthz and /metrics
// answers 503 "starting".
//
// Cluster mode (Config.Cluster): a tenant's routes that read or change its
// database (queries, tables and their rules, retention, quarantine,
// export; onWriter) are forwarded to the node that writes the tenant's
// partition (cluster.Node.Forward) after the key and scope checks; /healthz adds the
// node's connection and partitions, GET /api/admin/cluster the cluster.
package api
