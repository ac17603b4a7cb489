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
// Webhook deliveries reuse DecodeOne and Admit, so a delivery is typed,
// bounded and rate limited exactly like an insert.
package ingest
