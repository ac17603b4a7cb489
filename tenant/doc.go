// Package tenant keeps the registry of tenants, their API keys and plans.
//
// The registry lives in one JSON file (meta.json) in the data directory,
// rewritten atomically on every change, outside the lock that requests take
// (changes and their writes are serialized by a mutex of their own); it is
// small (a thousand tenants is a few hundred KiB) and never on the ingest
// hot path, which only reads the in-memory maps. A tenant created without a
// plan gets DefaultPlan, which has no rate limit and no quota. Keys are random, shown once, and stored only as SHA-256
// hashes; Authenticate looks a key up by its hash and compares in constant
// time. The package has no DuckDB or HTTP dependency.
//
// Cluster. With Config.Shared (cluster/kv's duckgate_tenants bucket) the
// registry is one record per tenant, its keys' hashes and its plan name
// included, plus the admin key's hash, instead of meta.json (shared.go). The
// maps stay the read path, Authenticate unchanged; every node's watcher
// applies every node's changes to them, so a key made or revoked on one node
// acts on all within milliseconds. A change is a compare-and-set on the
// tenant's record: two nodes changing one tenant at once (a key each, a plan
// and a status) lose nothing. Plan definitions are configuration: give every
// node the same -plans. An existing meta.json seeds an empty cluster.
package tenant
