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
package tenant
