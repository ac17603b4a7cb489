// Package tenantdb owns the open DuckDB databases, one file per tenant.
//
// Every part of duckgate that touches a tenant's database (the batcher's
// writer, the query engine) acquires a Handle from the Pool and releases it
// when done. A database is opened on first use with the tenant's plan limits
// (memory_limit, threads) and the sandbox settings (no file, network or
// extension access, configuration locked), so no statement a tenant sends can
// reach beyond its own file. The pool keeps at most Config.MaxOpen databases
// open and closes the least recently used idle one when it needs room; when
// all of them are in use, Acquire waits for one to be released, so MaxOpen
// is a hard cap on open databases and their file descriptors. Snapshot
// copies a database through its own open instance, for readers that must
// not open the live file a second time.
package tenantdb
