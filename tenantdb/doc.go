// Package tenantdb owns the open DuckDB databases, one file per tenant.
//
// Every part of duckgate that touches a tenant's database (the batcher's
// writer, the query engine, the admin API) acquires a Handle from the Pool
// and releases it when done. A database is opened on first use with the
// tenant's plan limits (memory_limit, threads; one thread while its file is
// under Config.SingleThreadBelow) and the sandbox settings (no
// file, network or extension access, configuration locked), so no statement
// a tenant sends can reach beyond its own file. The pool keeps at most
// Config.MaxOpen databases open and closes the least recently used idle one
// when it needs room; when all of them are in use, Acquire waits for one to
// be released or for its context to end, so MaxOpen is a hard cap on open
// databases and their file descriptors. Evict waits, up to a timeout, for a
// database's handles to be released and closes it.
//
// SetMemoryCap caps what DuckDB holds in the whole process, over all
// databases (memcap.go): it counts DuckDB's jemalloc extents and the C
// heap's large blocks, and refuses the allocation that would pass the cap,
// which fails the statement that asked for it; every binary that links
// this package has its C allocator entry points in front of glibc's.
//
// Snapshot copies a database through its own open instance, for readers
// that must not open the live file a second time (the operator query); New
// deletes the copies a crash left behind. ExportDatabase and ExportParquet
// make a tenant's whole-database export the same way, in one transaction:
// a DuckDB file, or one Parquet file per table with a manifest of tables,
// columns, types and row counts (export.go). Size is a tenant's bytes on
// disk; Used, which the storage quota measures, subtracts the free blocks
// a retention sweep measured inside the file (usage.go). Tables and Columns are the one
// place that lists a tenant's tables (without duckgate's internal
// _duckgate* tables), with exact row counts, and a table's columns.
package tenantdb
