// Package schema decides the DuckDB column types of ingested JSON rows.
//
// Data flow: the ingest path parses JSON itself and calls ClassifyNumber and
// IsTimestamp to turn each top-level value into a Kind; the batcher ORs the
// kinds of each key over a batch into a Seen (a bit set, so the result does not
// depend on row order); at flush time the tenant writer calls Table.Plan, which
// merges keys that differ only in ASCII case, picks each column's Type with
// TypeOf and Evolve, routes keys that cannot be columns to OverflowColumn, and
// returns the DDL as Changes rendered with QuoteIdent. A table's Rules (pinned
// column types, frozen), which the caller reads from wherever it keeps them,
// are set on the Table: Plan never widens a pinned column and adds no column
// to a frozen table but pinned ones; Accepts says which values a pinned type
// stores as they are.
//
// QuoteIdent and QuoteString are the only SQL quoting in duckgate, and
// CheckTableName the one check of a table name a tenant sends (reserved
// names included).
//
// The package is pure: no I/O, no DuckDB, standard library only.
package schema
