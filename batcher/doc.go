// Package batcher buffers decoded rows per tenant and table and moves them
// into the tenant's DuckDB database in large batches.
//
// Data flow: the ingest handler decodes a request into Rows (Builder) and
// calls Insert. Insert charges the rows against the global memory cap,
// makes them durable (write-ahead log, when configured) and queues them on
// the tenant's writer. One writer goroutine per tenant owns all writes to
// that tenant's database: when a table's buffer reaches a row count, a byte
// size or an age, the writer evolves the table's schema (package schema) and
// appends the whole batch with the DuckDB Appender inside one transaction,
// so a batch lands whole or not at all. Handlers never touch DuckDB.
package batcher
