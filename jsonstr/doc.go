// Package jsonstr writes JSON string literals by hand, without reflection
// or allocation: the query encoders, the batcher's overflow and quarantine
// objects and its idempotency file use it. Invalid UTF-8 becomes U+FFFD, so
// the output is always valid JSON.
package jsonstr
