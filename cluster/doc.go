// Package cluster runs duckgate on several nodes over NATS JetStream:
// any node takes any tenant's inserts, and losing a node loses nothing.
//
// Data path: a node that receives an insert decodes it as a single node
// does, then the batcher appends it to the Log, which is the Node here:
// Append publishes the encoded insert to the stream DUCKGATE on subject
// duckgate.p.<partition>, the partition being a stable hash of the tenant
// (Partition), with the idempotency key (hashed with the tenant) as
// Nats-Msg-Id, and the insert is acknowledged to the client after
// JetStream's PubAck, i.e. once a majority of the stream's replicas have
// it. One stream with a subject per partition, rather than a stream per
// partition: one Raft group to run and watch, one limit on the bytes not
// yet snapshotted, and a partition's messages keep their order all the
// same.
//
// Writers: each partition has one writer node, the holder of its lease,
// a key p<n> in the KV bucket duckgate_leases whose TTL expires it unless
// renewed (compare-and-set on its revision every TTL/5; a node that cannot
// renew for 3/4 of the TTL stops writing by itself). Leases rather than
// pinned consumers: they are visible (admin API, routing of queries), they
// fence (a revision a stale node cannot reuse), and they balance (a node
// takes free partitions up to its share and gives back what is over it).
// The writer restores the partition's tenants from their snapshots, then
// reads the partition with its own pull consumer from the position the
// snapshots cover and hands each insert to the batcher (batcher.Apply),
// whose commit records the stream position in the tenant's
// _duckgate_applied table in the same DuckDB transaction as the rows and
// skips what the table already recorded; messages are acknowledged only
// after that commit.
//
// Snapshots: every SnapshotInterval the writer copies the databases of the
// tenants it changed (COPY FROM DATABASE into the tenant's scratch
// directory) into the object store duckgate_snapshots, then writes the
// partition's manifest (KV bucket duckgate_manifests, compare-and-set: a
// writer that lost the partition fails here) naming the snapshots and the
// position they cover, then purges the partition's subject up to it. The
// stream keeps every message no snapshot holds: it has no age limit and
// refuses new inserts (503) when full rather than dropping old ones.
//
// Reads: a query about a tenant is forwarded over HTTP to its partition's
// writer (Forward), whose Flush first waits until its consumer has handed
// everything the stream held at the start of the request (CaughtUp).
// An insert with ?wait=true waits for the commit on the writer (Committed,
// a NATS request to the writer when it is another node).
package cluster
