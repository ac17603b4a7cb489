package webhook

import "errors"

// Errors returned by Verify and ValidateSecret, wrapped with detail; test with
// errors.Is. The handler maps them to HTTP status:
//
//	ErrMissingSignature, ErrMalformedSignature, ErrBadSignature, ErrStaleTimestamp: 401
//	ErrMalformedBody: 400 (authentic, but not what the provider sends; retrying won't help)
//	ErrBadSecret, ErrUnknownProvider from Verify: 500 (our stored endpoint is broken)
//	ErrBadSecret, ErrUnknownProvider from ValidateSecret: 400 at registration
var (
	// ErrMissingSignature means the delivery has no signature header for its
	// provider (or an empty one).
	ErrMissingSignature = errors.New("webhook: missing signature")

	// ErrMalformedSignature means the signature header, or a header signed with
	// it such as a timestamp, cannot be parsed: wrong format, missing fields,
	// bad hex or base64, a MAC of the wrong length, more than 16 signatures, or
	// a header value over 8 KiB.
	ErrMalformedSignature = errors.New("webhook: malformed signature")

	// ErrBadSignature means the signature is well formed but no signature in it
	// matches the body under the endpoint's secret.
	ErrBadSignature = errors.New("webhook: signature does not match")

	// ErrStaleTimestamp means the signature matches but its signed timestamp is
	// further from now than the Verifier's Tolerance, in either direction: a
	// replay, or a clock far off.
	ErrStaleTimestamp = errors.New("webhook: timestamp outside tolerance")

	// ErrMalformedBody means an authentic Stripe delivery whose body is not a
	// JSON object with string "id" and "type", so it carries no delivery id.
	ErrMalformedBody = errors.New("webhook: body is not a JSON object")

	// ErrBadSecret means a secret cannot be used: empty, too long, or for
	// Standard Webhooks not base64 of at least 16 bytes.
	ErrBadSecret = errors.New("webhook: bad secret")

	// ErrUnknownProvider means a Provider that is not one of Stripe, GitHub,
	// Shopify or Standard.
	ErrUnknownProvider = errors.New("webhook: unknown provider")
)

// Errors of the HTTP handlers, wrapped with detail; package api maps them
// (and the ones above, and the Store's) to HTTP status:
//
//	ErrMissingSignature, ErrMalformedSignature, ErrBadSignature, ErrStaleTimestamp: 401
//	ErrMalformedBody, ErrBadRequest, ErrLimit: 400
//	ErrNotFound: 404; ErrForbidden: 403; ErrEncoding: 415; ErrBusy: 503
var (
	// ErrBadRequest means a registration the handler cannot accept: not
	// JSON, an unknown provider, a bad table name or secret.
	ErrBadRequest = errors.New("bad webhook registration")
	// ErrForbidden means the endpoint's tenant is suspended.
	ErrForbidden = errors.New("webhook deliveries refused")
	// ErrEncoding means the delivery is compressed: providers sign the
	// body as sent, uncompressed.
	ErrEncoding = errors.New("unsupported Content-Encoding")
	// ErrBusy means the same delivery is being stored by a concurrent
	// request that did not settle in time: retry.
	ErrBusy = errors.New("delivery in progress")
)
