// Package ingest serves inserts: body decoding, admission against the
// tenant's plan, and the hand-off to the batcher.
//
// An insert flows (package api has authenticated the key and checked its
// scope and the tenant's status): validate the table name → refuse at once
// if the batcher's buffers are full → decompress and bound the body → decode
// JSON (fastjson) into batcher.Rows, rejecting bad elements one by one →
// admit the rows (storage quota, then the plan's rows-per-second token
// bucket) → batcher.Submit → answer {"accepted":N,"rejected":M,"errors":[...]}.
// With ?wait=true the answer waits for the DuckDB commit.
//
// Handlers never touch DuckDB and never keep a RequestCtx or its body after
// they return: the decoder copies every string it keeps into the rows' own
// arena. A handler that fails writes nothing and returns an error wrapping
// one of the sentinel errors in errors.go; package api turns it into a
// status and a JSON body.
//
// The data lifecycle calls (lifecycle.go) are here too, as ingest's own
// business: an insert with ?dry_run=true is decoded as any insert and
// handed to batcher.DryRun instead of Submit; pins and freezes of a table
// are validated and handed to the batcher, whose writer goroutine applies
// them; the quarantine is listed and discarded through the batcher, and
// replayed by decoding each entry again (DecodeOne) and submitting it with
// batcher.SubmitAll under a key derived from its id
// (batcher.QuarantineReplayKey), so a replay stores each entry once.
// GetRetention, PutRetention and DeleteRetention (retention.go) check a
// table's retention setting against the plan's and hand it to the
// batcher, whose writer stores it and sweeps; Export (export.go) flushes
// the tenant, has tenantdb copy its database in one transaction into its
// scratch directory (a DuckDB file, or Parquet files and a manifest) and
// streams the copy, deleting it once sent.
//
// Webhook deliveries reuse DecodeOne and Admit, so a delivery is typed,
// bounded and rate limited exactly like an insert.
//
// The tracking API (track.go) speaks Segment's HTTP Tracking API, which
// RudderStack's SDKs share, and PostHog's capture endpoints. Package api
// routes /v1/{track,identify,page,screen,group,alias,batch,import} and
// /batch/, /capture/, /e/, /i/v0/e/ here and answers CORS preflights. A
// request flows: ReadTrack refuses at once if the batcher's buffers are
// full, gunzips the body whenever it says Content-Encoding: gzip or starts
// with the gzip magic (whatever its Content-Type), bounds it
// (TrackMaxBatch) and parses it, finding the key in the body (writeKey,
// api_key, token) → package api authenticates the key from the headers or
// the body and requires the ingest scope → Track maps each event to rows of
// Segment's warehouse tables (tracks and one table per event name,
// identifies, pages, screens, groups, aliases; EventTable names the event
// tables), stripping every key field, and rejects a bad or oversized event
// (TrackMaxEvent) alone, by index → each row's idempotency key
// "track:<table>:<messageId or uuid>" is reserved with BeginIdempotent; a
// key accepted within the idempotency window is a duplicate and skipped →
// Admit → batcher.SubmitAll: every row its own log record with its own key,
// appended concurrently to share the log's group commits → answer {"success":true} (Segment, RudderStack) or
// {"status":1} (PostHog) with accepted, duplicates, rejected and errors.
// A retried batch thus stores nothing twice, across crashes too: the keys
// travel in the log records and Recover restores them.
package ingest
