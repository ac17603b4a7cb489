// Package ingest is duckgate's HTTP front: the router, API-key
// authentication, request body decoding and the insert, admin and webhook
// handlers.
//
// An insert flows: authenticate the key (package tenant) → check scope and
// status → decompress and bound the body → decode JSON (fastjson) into
// batcher.Rows, rejecting bad elements one by one → batcher.Submit → answer
// {"accepted":N,"rejected":M,"errors":[...]}. Handlers never touch DuckDB
// and never keep a RequestCtx or its body after they return: the decoder
// copies every string it keeps into the rows' own arena.
//
// Query and share requests are authenticated here and handed to the
// handlers configured in Config.
package ingest
