// Package webhook verifies provider webhook deliveries: Stripe, GitHub,
// Shopify and Standard Webhooks (standardwebhooks.com).
//
// A user registers an endpoint (provider, secret, target table); the provider
// then POSTs to /api/webhooks/{id} without our API key, so the signature is the
// only authentication. The handler looks up the endpoint, reads the raw body and
// calls Verifier.Verify with the endpoint's secret and a Header getter. Verify
// checks the MAC exactly as the provider specifies it (constant-time
// comparison, timestamp tolerance where the provider signs one) and returns the
// Delivery's id, for dedup, and its event name. ValidateSecret checks a secret
// when the endpoint is registered. The Sign* functions produce what a provider
// would send, for tests, docs and bench.
//
// Verify and ValidateSecret are pure: no I/O, nothing kept after they return.
// Verify itself is pure; registered endpoints, their sealed secrets and the
// delivery ids already stored are kept by the Store (store.go, seen.go).
//
// What the signature covers differs by provider, and so does what dedup on
// Delivery.ID can promise:
//   - Stripe signs the body (which holds the id) and a timestamp.
//   - Standard Webhooks signs the id, a timestamp and the body.
//   - GitHub and Shopify sign only the body: no timestamp, and the id and event
//     headers are not covered, so a captured delivery can be replayed with a
//     fresh id. Dedup there catches the providers' own retries, not an attacker.//
//
// Stored state: the Store keeps duckgate's webhook endpoints and the delivery ids
// already stored, in three files of the data directory:
//
//	webhooks.json     the endpoints: id, tenant, provider, table and the sealed secret
//	webhook.key       the server key, 32 random bytes in hex, mode 0600, made on first start
//	webhook_seen.log  one line per stored delivery: "<unix seconds> <hex SHA-256 of endpoint and delivery id>"
//
// Secrets at rest. A provider signs with a shared secret, so the secret must be
// kept to check signatures: a hash will not do. Each secret is sealed with
// AES-256-GCM under the server key, with a fresh nonce, the endpoint and tenant
// ids as additional data (a sealed secret copied onto another endpoint does not
// open). webhooks.json alone (a backup, a leaked volume snapshot) reveals no
// secret; keep webhook.key out of the backups that hold webhooks.json, or back
// it up separately. Losing webhook.key makes the sealed secrets useless: Open
// refuses to start and says so, and the endpoints must be registered again.
// Open keeps the opened secrets in memory only.
//
// Dedup. Claim marks a (endpoint, delivery id) pair as in flight; a second
// Claim of the same pair waits for the first to Commit (then it is a
// duplicate) or Release (then it claims). Commit appends a line to
// webhook_seen.log and fsyncs it before it returns: webhooks are low-rate, so
// an fsync per delivery is cheap, and a redelivery after a restart is still
// caught. Open drops lines older than DedupWindow and any torn last line, and
// rewrites the file; a running Store compacts the same way once the appended
// lines outnumber the live ones. Ids are kept as hashes, so the log holds
// nothing a provider sent.
//
// Cluster. With StoreConfig.Shared (cluster/kv's duckgate_webhooks bucket)
// the endpoints are one record each, with the sealed secret, instead of
// webhooks.json (shared.go); every node's watcher applies every node's
// changes to the map. Every node must seal with the same key
// (StoreConfig.Key, from $DUCKGATE_WEBHOOK_KEY, or the same webhook.key): a
// "keycheck" record, a constant sealed under the cluster's key, makes a node
// with another key refuse to start (ErrKey). The seen log stays per node.
//
// The endpoints file is small and rewritten atomically (temp file, fsync,
// rename) on every change; nothing here is on the insert hot path. The
// package has no DuckDB or HTTP dependency.
package webhook
