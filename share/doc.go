// Package share makes public, expiring links to a tenant's query results.
//
// Data flow. A tenant POSTs a query to /api/data/query/share; the router
// (package api; ingest today) authenticates the key (query scope) and calls
// HandleCreate. The SQL is checked by the query sandbox
// (query.Engine.Check) and, for a live link, run once through the row API
// (query.Engine.Rows) with LIMIT 0, so that a wrong parameter fails now,
// not at the first download. A snapshot link instead runs the query once
// (query.Engine.ExportParquet) into a Parquet file in the tenant's scratch
// directory. The link gets a random id (24 bytes from crypto/rand,
// base64url: 32 characters, 192 bits): the only secret of the URL
// /share/<id>. The tenant's key never appears in a link or a page.
//
// Storage. Links live in one JSON file (Config.Path), rewritten atomically
// (temp file, fsync, rename) on every create and revoke. It holds the
// SHA-256 of each id, never the id: the file alone (a backup, a leaked
// volume) opens no link. A request's id is hashed and looked up; an unknown
// id and another tenant's are therefore the same miss. Download counts are
// kept in memory and written on the janitor's tick and on Close.
//
// Serving. GET /share/<id> (HandlePage) is an HTML page (html/template)
// with the link's name, expiry, row count, download links, the first
// Config.PreviewRows rows and, when they have a date or time column and
// numbers, a line chart of them (chart.go, inline SVG); the preview and the count are read through
// query.Engine.Rows, with the tenant's sandbox, concurrency slot and
// limits. GET /share/<id>/data.{csv,json,ndjson,parquet} (HandleDownload)
// is the result as an attachment: a live link runs the query at each
// request through query.Engine.Stream; a snapshot link reads its Parquet
// file through the same engine (SELECT * FROM read_parquet(...), the one
// file the sandbox lets it read: query.Request.ScratchFile), or sends the
// file as is for Parquet. The router lets only GET and HEAD through.
// The page and the downloads never show the SQL: errors of running it
// become ErrQueryFailed (the cause is logged), except query.ErrBusy,
// ErrTimeout and ErrTooLarge, which say nothing of it.
//
// Errors. Every handler returns nil once it wrote its answer; otherwise
// it wrote nothing and returns an error wrapping a sentinel of errors.go
// (or of package query), whose comment gives the HTTP status; the router
// maps it in one place. The choice for the page, which people read: the
// router answers HandlePage's error with WritePageError(ctx, id, status,
// err) (page.go), a styled HTML page saying what happened (unknown,
// expired, revoked, suspended) and what to do, with the status it
// computed; other handlers' errors
// are its usual JSON. A page whose link resolves but whose preview fails is
// still written by HandlePage, with the failure told on it: 503 with
// Retry-After (busy), 504 (timeout), 410 (deleted meanwhile), else 200.
//
// Lifetime. Expired and revoked links lose their snapshot file at the next
// janitor tick (every Config.JanitorInterval, and at Open); revoking deletes
// it at once. Their records are kept Config.KeepExpired after expiry so that
// visitors get 410 rather than 404, then dropped. Open also deletes
// snapshot files no link refers to (a crash between writing one and saving
// its link), and checks the SQL of every live link again
// (query.Engine.CheckStored: the sandbox's allow-list, no tenant data): a
// link it refuses is marked in the registry ("refused", with the reason),
// listed with status "refused" and answers ErrRefused until a later start
// allows it. Close stops the janitor and saves the download counts.
//
// Cluster. With Config.Shared (cluster/kv's duckgate_shares bucket) each
// link is one record keyed by the hex SHA-256 of its id, instead of a line
// of the file; the map stays the read path and every node's watcher applies
// every node's changes to it (shared.go), so a link made or revoked on one
// node resolves, or stops, on all within milliseconds. Each change is a
// compare-and-set on the record; download counts are added as deltas, so
// two nodes' counts add up. A snapshot's Parquet file stays on the node
// that made it.
//
// Locks: Service.saveMu may be held while taking Service.mu, never the
// reverse.
package share
