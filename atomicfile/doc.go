// Package atomicfile replaces small files so that a crash leaves either the
// old or the new content, never a mix: the registries of tenants, share
// links and webhooks, and the batcher's boot epoch, are written with it.
package atomicfile
