// Package kv keeps the state a duckgate cluster shares in JetStream
// key-value buckets: tenants with their key hashes and plans
// (duckgate_tenants), share links (duckgate_shares) and webhook endpoints
// with their sealed secrets (duckgate_webhooks).
//
// Packages tenant, share and webhook keep their in-memory maps as the read
// path; a Bucket is what they persist to instead of their file when
// Config.Shared is set (tenant.Shared, share.Shared, webhook.Shared: the
// same two methods). The data flow:
//
//	change on node A: Bucket.Modify(key, f) ─▶ Get ─▶ f(old) ─▶ Update(key, new, old revision)
//	                    (revision moved: Get and f again; a compare-and-set, no change lost)
//	every node's watcher: an ordered pull consumer on the bucket's stream (last
//	                      value per key, then every change; 1 s heartbeat, so it
//	                      starts again elsewhere when its NATS server dies)
//	                      ─▶ apply(key, value) ─▶ the package's maps, under its lock
//	Modify returns once A's own watcher has applied the change (read-your-writes on A);
//	the other nodes apply it as soon as JetStream delivers it (milliseconds).
//
// Nothing secret is stored: key hashes (SHA-256), link id hashes and secrets
// sealed with the webhook key, as in the files of a single node. Every node
// must seal with the same webhook key (see webhook.StoreConfig.Key).
//
// A value that does not decode (someone put garbage in a bucket) is logged
// and skipped, by key; the other records load.
package kv
