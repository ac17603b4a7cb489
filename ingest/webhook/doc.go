// Package webhook verifies provider webhook deliveries: Stripe, GitHub,
// Shopify and Standard Webhooks (standardwebhooks.com).
//
// A user registers an endpoint (provider, secret, target table); the provider
// then POSTs to /api/webhooks/{id} without our API key, so the signature is the
// only authentication. The handler looks up the endpoint, reads the raw body and
// calls Verifier.Verify with the endpoint's secret and a Header getter. Verify
// checks the MAC exactly as the provider specifies it (constant-time
// comparison, timestamp tolerance where the provider signs one) and returns the
// Delivery's id, for dedup, and its event name. ValidateSecret checks a secret
// when the endpoint is registered. The Sign* functions produce what a provider
// would send, for tests, docs and bench.
//
// The package is pure: stdlib only, no I/O, nothing kept after Verify returns.
// Registered endpoints, their sealed secrets and the delivery ids already
// stored are kept by package hookstore, the I/O half.
//
// What the signature covers differs by provider, and so does what dedup on
// Delivery.ID can promise:
//   - Stripe signs the body (which holds the id) and a timestamp.
//   - Standard Webhooks signs the id, a timestamp and the body.
//   - GitHub and Shopify sign only the body: no timestamp, and the id and event
//     headers are not covered, so a captured delivery can be replayed with a
//     fresh id. Dedup there catches the providers' own retries, not an attacker.
package webhook
