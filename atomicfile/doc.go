// Package atomicfile replaces small files so that a crash leaves either the
// old or the new content, never a mix: the registries of tenants, share
// links and webhooks, the batcher's boot epoch and the write-ahead log's
// record of released segments are written with it. Its SyncDir makes
// file creations, renames and removals in a directory durable; the log and
// the batcher's idempotency store use it rather than a copy of their own.
// Registry is the one way the registries write themselves: the change and
// its encoding under the owner's lock, the write with that lock released,
// writes in the order of the changes.
package atomicfile
