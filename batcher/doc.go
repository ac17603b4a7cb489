// Package batcher buffers decoded rows per tenant and table and moves them
// into the tenant's DuckDB database in large batches.
//
// Data flow: the ingest handler decodes a request into Rows (Builder) and
// calls Submit. Submit charges the rows against the global memory cap,
// makes them durable (write-ahead log, package wal, when configured) and
// queues them on the tenant's writer. One writer goroutine per tenant owns
// all writes to that tenant's database: when a table's buffer reaches a row
// count, a byte size or an age, the writer evolves the table's schema
// (package schema) and appends the whole batch with the DuckDB Appender
// inside one transaction, so a batch lands whole or not at all. A small
// buffer of a slowly written table is flushed sooner, after
// Config.MinFlushInterval, while the process's CPUs are not busy
// (adaptive.go). At most
// Config.MaxConcurrentFlushes flushes run at once, across tenants. Handlers
// never touch DuckDB.
//
// Durability: Submit numbers an insert under its writer's lock (so a table's
// inserts are numbered in buffer order), writes it to the write-ahead log
// and returns once the log is fsynced. A flush takes only the head of a
// buffer whose log writes are done and records, in the same DuckDB
// transaction, the number of the last insert it committed; Recover replays
// exactly the inserts above that number, flushing all tenants at once. A
// log segment is released once no uncommitted insert can be in it.
//
// Cluster mode (Config.Log instead of a WAL, package cluster): Submit and
// SubmitAll append each insert to the Log and return once it acknowledged
// it, buffering nothing on the node that received it; the node that
// writes the tenant's partition reads the log and hands each insert to
// Apply with its log position, which the flush records in the same
// transaction as the rows. A flush first skips the inserts at or below
// the position its table recorded (a redelivery, or a writer reading the
// log again) and those whose idempotency key the tenant's _duckgate_keys
// table holds (a retry beyond JetStream's duplicate window; the keys are
// written in the same transaction as the rows), and Apply's callback, which acknowledges the message to the
// log, runs only after the commit. Flush first waits for the Log to hand
// over everything it acknowledged before (Log.CaughtUp).
//
// Data lifecycle: a tenant's rules (pinned column types, frozen tables;
// rules.go) live in its database and are read with a table's schema and
// handed to schema.Table.Plan as data. Work other than a flush that writes
// the database (a pin, a freeze, a discard) is queued as an op (ops.go) and
// run by the writer goroutine between flushes. A value a pinned column does
// not accept is left out of its row by appendRows and written, in the same
// transaction, to the quarantine table (quarantine.go) with its reason; the
// flush of a replayed entry (its idempotency key is QuarantineReplayKey)
// deletes the entry in that transaction too. DryRun plans an insert on a
// copy of the committed schema and writes nothing.
//
// Idempotency keys travel in their insert's log record; once its rows are
// committed, the key store's own goroutine appends the key to its file
// (one write and fsync per group of waiting flushes) before the record's
// segment may go, so an acknowledged key survives a crash.
//
// Retention (retention.go): the writer also deletes rows older than their
// table's retention (the table's own setting, kept in the tenant's
// _duckgate_retention table, capped by the plan's; Config.PlanRetention),
// by the table's time column, in bounded DELETE statements run one per
// turn of its loop between flushes, then CHECKPOINTs and, when most of the
// file is free, rewrites the swept tables so the file shrinks. The
// sweeper goroutine asks every tenant's writer for a sweep every
// Config.SweepInterval; Sweep runs one now and waits for it.
//
// Data versions: after every transaction on a tenant's database (a flush,
// with its schema changes, or a quarantine; committed or not) the writer
// gives the tenant a new DataVersion from one process-wide clock. The
// query result cache (package query, through its Versioner interface)
// serves an answer only while the version it was computed under holds.
// Anything else that changes a tenant's data must bump it too.
//
// Goroutines and shutdown: the writers, the key store's file writer and
// the retention sweeper are the batcher's goroutines. Close (and Forget, for one tenant) flushes and
// stops them under the caller's context; when it ends, the writers' own
// context is canceled, which aborts their DuckDB statements and their waits
// for a flush slot or a key fsync, and Close waits for them to return.
// Aborted rows stay in the log for Recover.
//
// Locks: Batcher.mu, writer.mu, Batcher.walMu and the idempotency store's
// mutex are each held only for bookkeeping, never across I/O or DuckDB, and
// never two at a time (versions.mu is a leaf too), except that walMu is held around wal.Log.Floor, which
// takes the log's own mutex (and the log never calls back into the batcher).
package batcher
