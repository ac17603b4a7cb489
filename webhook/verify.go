package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"
)

// Header returns a request header's value by canonical or lower-case name ("" if
// absent). The handler adapts fasthttp to it. Verify asks by the canonical MIME
// form (textproto.CanonicalMIMEHeaderKey: "X-Github-Delivery", "Webhook-Id"), so
// fasthttp's RequestHeader.Peek, net/http's Header.Get and a map keyed by
// canonical names all work. The value need only live until Verify returns.
type Header func(name string) string

// Header names, in canonical MIME form.
const (
	hdrStripeSignature  = "Stripe-Signature"
	hdrGitHubSignature  = "X-Hub-Signature-256"
	hdrGitHubDelivery   = "X-Github-Delivery"
	hdrGitHubEvent      = "X-Github-Event"
	hdrShopifyHMAC      = "X-Shopify-Hmac-Sha256"
	hdrShopifyWebhookID = "X-Shopify-Webhook-Id"
	hdrShopifyEventID   = "X-Shopify-Event-Id"
	hdrShopifyTopic     = "X-Shopify-Topic"
	hdrStandardID       = "Webhook-Id"
	hdrStandardTime     = "Webhook-Timestamp"
	hdrStandardSig      = "Webhook-Signature"
	hdrSvixID           = "Svix-Id"
	hdrSvixTime         = "Svix-Timestamp"
	hdrSvixSig          = "Svix-Signature"
)

// standardHeaders are the three header names of a Standard Webhooks
// delivery: webhook-* as the specification names them, or svix-* as Svix,
// the scheme's origin, still sends them.
type standardHeaders struct{ id, time, sig string }

var (
	webhookHeaders = standardHeaders{hdrStandardID, hdrStandardTime, hdrStandardSig}
	svixHeaders    = standardHeaders{hdrSvixID, hdrSvixTime, hdrSvixSig}
)

const (
	// DefaultTolerance is how far a signed timestamp may be from now when
	// Verifier.Tolerance is zero: the default of Stripe's and Standard
	// Webhooks' own libraries.
	DefaultTolerance = 5 * time.Minute

	// maxHeaderLen bounds every header value Verify reads. Real signature
	// headers are under 200 bytes; anything over 8 KiB is hostile.
	maxHeaderLen = 8 << 10

	// maxSignatures bounds the signatures (of any scheme) in one header. Stripe
	// and Standard Webhooks send one per active secret, two during a rotation.
	maxSignatures = 16

	// maxUnix is 9999-12-31T23:59:59Z. A later timestamp is stale whatever the
	// tolerance, and keeping below it keeps time.Unix from overflowing.
	maxUnix = 253402300799
)

// Delivery is a verified delivery's metadata.
//
// ID is "" when the provider's id is absent (say, no X-GitHub-Delivery): that is
// not an error, the handler then skips dedup. Event is "" when absent too.
type Delivery struct {
	ID    string // provider's delivery id: Stripe event "id" from the JSON body, X-GitHub-Delivery, X-Shopify-Webhook-Id, webhook-id
	Event string // Stripe body "type", X-GitHub-Event, X-Shopify-Topic, Standard Webhooks body "type" when present
}

// Verifier checks deliveries for one provider. The zero Tolerance and Now mean
// the defaults; a Verifier is a value and safe for concurrent use.
type Verifier struct {
	// Provider selects the signing scheme.
	Provider Provider

	// Tolerance is how far a signed timestamp (Stripe, Standard) may be from
	// Now, in either direction. Zero or negative means DefaultTolerance.
	Tolerance time.Duration

	// Now returns the current time; nil means time.Now. Tests fix it.
	Now func() time.Time
}

// Verify checks the signature of body with secret and returns the delivery
// metadata. body must be the raw request body, byte for byte. Verify keeps no
// reference to body or to header values after it returns.
//
// Errors, wrapped with detail: ErrMissingSignature, ErrMalformedSignature,
// ErrBadSignature, ErrStaleTimestamp (all 401 in the handler); ErrMalformedBody
// for an authentic Stripe delivery whose body is not a JSON object; ErrBadSecret
// or ErrUnknownProvider when the endpoint itself is misconfigured. An empty
// secret is always ErrBadSecret: anyone can compute a MAC under it.
//
// The signature is checked before the timestamp, so ErrStaleTimestamp is only
// ever returned for a delivery that is authentic but old (or from the future).
func (v Verifier) Verify(secret string, h Header, body []byte) (Delivery, error) {
	if secret == "" {
		return Delivery{}, fmt.Errorf("%w: the endpoint's secret is empty", ErrBadSecret)
	}
	switch v.Provider {
	case Stripe:
		return v.verifyStripe(secret, h, body)
	case GitHub:
		return verifyGitHub(secret, h, body)
	case Shopify:
		return verifyShopify(secret, h, body)
	case Standard:
		return v.verifyStandard(secret, h, body)
	default:
		return Delivery{}, fmt.Errorf("%w %q", ErrUnknownProvider, v.Provider)
	}
}

// verifyStripe checks "Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>][,v0=...]",
// the MAC being HMAC-SHA256(secret, "<t>.<body>"), and reads "id" and "type"
// from the body.
func (v Verifier) verifyStripe(secret string, h Header, body []byte) (Delivery, error) {
	hv, err := header(h, hdrStripeSignature)
	if err != nil {
		return Delivery{}, err
	}
	if hv == "" {
		return Delivery{}, missing(hdrStripeSignature)
	}
	var (
		ts    string
		hasTS bool
		sigs  [maxSignatures][sha256.Size]byte
		nsigs int // v1 signatures in sigs
		nall  int // signatures of every scheme
	)
	for item := range strings.SplitSeq(hv, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return Delivery{}, malformed(hdrStripeSignature, "an element is not key=value")
		}
		if key == "t" {
			if hasTS {
				return Delivery{}, malformed(hdrStripeSignature, "t= appears twice")
			}
			ts, hasTS = val, true
			continue
		}
		if nall++; nall > maxSignatures {
			return Delivery{}, malformed(hdrStripeSignature, "more than 16 signatures")
		}
		if key != "v1" {
			continue // v0 (test-mode) and future schemes
		}
		if !decodeHexMAC(&sigs[nsigs], val) {
			return Delivery{}, malformed(hdrStripeSignature, "v1= is not a hex SHA-256 MAC")
		}
		nsigs++
	}
	if !hasTS {
		return Delivery{}, malformed(hdrStripeSignature, "no t=")
	}
	if nsigs == 0 {
		return Delivery{}, malformed(hdrStripeSignature, "no v1=")
	}
	unix, ok := parseUnix(ts)
	if !ok {
		return Delivery{}, malformed(hdrStripeSignature, "t= is not a unix time in seconds")
	}

	mac := hmac.New(sha256.New, []byte(secret))
	io.WriteString(mac, ts)
	mac.Write([]byte{'.'})
	mac.Write(body)
	if !anyEqual(mac, sigs[:nsigs]) {
		return Delivery{}, fmt.Errorf("%w: no v1= in %s matches", ErrBadSignature, hdrStripeSignature)
	}
	if err := v.checkTime(unix); err != nil {
		return Delivery{}, err
	}

	if !isJSONObject(body) {
		return Delivery{}, fmt.Errorf("%w: a Stripe event must be a JSON object", ErrMalformedBody)
	}
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return Delivery{}, fmt.Errorf("%w: Stripe event: %v", ErrMalformedBody, err)
	}
	return Delivery{ID: ev.ID, Event: ev.Type}, nil
}

// verifyGitHub checks "X-Hub-Signature-256: sha256=<hex>", the MAC being
// HMAC-SHA256(secret, body). The older SHA-1 X-Hub-Signature is not accepted.
func verifyGitHub(secret string, h Header, body []byte) (Delivery, error) {
	hv, err := header(h, hdrGitHubSignature)
	if err != nil {
		return Delivery{}, err
	}
	if hv == "" {
		return Delivery{}, missing(hdrGitHubSignature)
	}
	hexMAC, ok := strings.CutPrefix(hv, "sha256=")
	if !ok {
		return Delivery{}, malformed(hdrGitHubSignature, "no sha256= prefix")
	}
	var sig [1][sha256.Size]byte
	if !decodeHexMAC(&sig[0], hexMAC) {
		return Delivery{}, malformed(hdrGitHubSignature, "not a hex SHA-256 MAC")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	if !anyEqual(mac, sig[:]) {
		return Delivery{}, fmt.Errorf("%w: %s", ErrBadSignature, hdrGitHubSignature)
	}
	var d Delivery
	if d.ID, err = header(h, hdrGitHubDelivery); err != nil {
		return Delivery{}, err
	}
	if d.Event, err = header(h, hdrGitHubEvent); err != nil {
		return Delivery{}, err
	}
	return d, nil
}

// verifyShopify checks "X-Shopify-Hmac-Sha256: <base64>", the MAC being
// HMAC-SHA256(secret, body).
func verifyShopify(secret string, h Header, body []byte) (Delivery, error) {
	hv, err := header(h, hdrShopifyHMAC)
	if err != nil {
		return Delivery{}, err
	}
	if hv == "" {
		return Delivery{}, missing(hdrShopifyHMAC)
	}
	var sig [1][sha256.Size]byte
	if !decodeBase64MAC(&sig[0], hv) {
		return Delivery{}, malformed(hdrShopifyHMAC, "not a base64 SHA-256 MAC")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	if !anyEqual(mac, sig[:]) {
		return Delivery{}, fmt.Errorf("%w: %s", ErrBadSignature, hdrShopifyHMAC)
	}
	var d Delivery
	if d.ID, err = header(h, hdrShopifyWebhookID); err != nil {
		return Delivery{}, err
	}
	if d.ID == "" {
		if d.ID, err = header(h, hdrShopifyEventID); err != nil {
			return Delivery{}, err
		}
	}
	if d.Event, err = header(h, hdrShopifyTopic); err != nil {
		return Delivery{}, err
	}
	return d, nil
}

// verifyStandard checks Standard Webhooks: "webhook-signature: v1,<base64>
// [v1,<base64> ...]", the MAC being HMAC-SHA256(key, "<webhook-id>.<webhook-
// timestamp>.<body>") with key the base64-decoded secret. Entries of other
// versions (v1a, ...) are ignored. A missing webhook-id is signed as "".
// Svix's header names (svix-id, svix-timestamp, svix-signature) are read
// when webhook-signature is absent; the three names always come from one
// family.
func (v Verifier) verifyStandard(secret string, h Header, body []byte) (Delivery, error) {
	names := webhookHeaders
	hv, err := header(h, names.sig)
	if err != nil {
		return Delivery{}, err
	}
	if hv == "" {
		names = svixHeaders
		if hv, err = header(h, names.sig); err != nil {
			return Delivery{}, err
		}
	}
	if hv == "" {
		return Delivery{}, missing(hdrStandardSig + " (or " + hdrSvixSig + ")")
	}
	id, err := header(h, names.id)
	if err != nil {
		return Delivery{}, err
	}
	ts, err := header(h, names.time)
	if err != nil {
		return Delivery{}, err
	}
	if ts == "" {
		return Delivery{}, malformed(names.time, "missing")
	}
	unix, ok := parseUnix(ts)
	if !ok {
		return Delivery{}, malformed(names.time, "not a unix time in seconds")
	}
	var (
		sigs  [maxSignatures][sha256.Size]byte
		nsigs int
		nall  int
	)
	for item := range strings.FieldsSeq(hv) {
		if nall++; nall > maxSignatures {
			return Delivery{}, malformed(names.sig, "more than 16 signatures")
		}
		version, sig, ok := strings.Cut(item, ",")
		if !ok {
			return Delivery{}, malformed(names.sig, "an entry is not version,signature")
		}
		if version != "v1" {
			continue // v1a (asymmetric) and future versions
		}
		if !decodeBase64MAC(&sigs[nsigs], sig) {
			return Delivery{}, malformed(names.sig, "v1 is not a base64 SHA-256 MAC")
		}
		nsigs++
	}
	if nsigs == 0 {
		return Delivery{}, malformed(names.sig, "no v1 signature")
	}
	key, err := standardKey(secret)
	if err != nil || len(key) == 0 {
		return Delivery{}, fmt.Errorf("%w: the endpoint's Standard Webhooks secret is not base64 of a key", ErrBadSecret)
	}

	mac := hmac.New(sha256.New, key)
	io.WriteString(mac, id)
	mac.Write([]byte{'.'})
	io.WriteString(mac, ts)
	mac.Write([]byte{'.'})
	mac.Write(body)
	if !anyEqual(mac, sigs[:nsigs]) {
		return Delivery{}, fmt.Errorf("%w: no v1 in %s matches", ErrBadSignature, names.sig)
	}
	if err := v.checkTime(unix); err != nil {
		return Delivery{}, err
	}

	d := Delivery{ID: id}
	if isJSONObject(body) {
		var ev struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(body, &ev) == nil {
			d.Event = ev.Type
		}
	}
	return d, nil
}

// header returns h(name), or ErrMalformedSignature if it is longer than
// maxHeaderLen.
func header(h Header, name string) (string, error) {
	v := h(name)
	if len(v) > maxHeaderLen {
		return "", malformed(name, "longer than 8 KiB")
	}
	return v, nil
}

func missing(name string) error {
	return fmt.Errorf("%w: no %s header", ErrMissingSignature, name)
}

// malformed says what is wrong without echoing the hostile value.
func malformed(name, what string) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformedSignature, name, what)
}

// parseUnix parses a unix time in seconds: 1 to 19 ASCII digits, no sign.
func parseUnix(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// checkTime returns ErrStaleTimestamp if unix is further than the tolerance
// from now.
func (v Verifier) checkTime(unix int64) error {
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if unix > maxUnix {
		return fmt.Errorf("%w: timestamp is after the year 9999", ErrStaleTimestamp)
	}
	switch d := now().Sub(time.Unix(unix, 0)); {
	case d > tol:
		return fmt.Errorf("%w: signed %s ago; tolerance is %s", ErrStaleTimestamp, d.Round(time.Second), tol)
	case d < -tol:
		return fmt.Errorf("%w: signed %s in the future; tolerance is %s: check the clocks", ErrStaleTimestamp, (-d).Round(time.Second), tol)
	}
	return nil
}

// decodeHexMAC decodes a hex SHA-256 MAC (either case) into dst.
func decodeHexMAC(dst *[sha256.Size]byte, s string) bool {
	if len(s) != hex.EncodedLen(sha256.Size) {
		return false
	}
	_, err := hex.Decode(dst[:], []byte(s))
	return err == nil
}

// decodeBase64MAC decodes a padded standard-base64 SHA-256 MAC into dst.
func decodeBase64MAC(dst *[sha256.Size]byte, s string) bool {
	// 44 characters, the last "=". Checking the length first also keeps the
	// decoder from skipping \r and \n into a longer value.
	if len(s) != base64.StdEncoding.EncodedLen(sha256.Size) {
		return false
	}
	var buf [sha256.Size + 1]byte // DecodedLen(44) is 33
	n, err := base64.StdEncoding.Strict().Decode(buf[:], []byte(s))
	if err != nil || n != sha256.Size {
		return false
	}
	*dst = [sha256.Size]byte(buf[:sha256.Size])
	return true
}

// anyEqual reports whether mac's sum equals any of sigs, comparing each in
// constant time and not stopping at the first match.
func anyEqual(mac hash.Hash, sigs [][sha256.Size]byte) bool {
	var sum [sha256.Size]byte
	mac.Sum(sum[:0])
	ok := false
	for i := range sigs {
		if hmac.Equal(sum[:], sigs[i][:]) {
			ok = true
		}
	}
	return ok
}

// isJSONObject reports whether body's first non-space byte opens an object.
// It lets json.Unmarshal tell "null" and "[]" from an object.
func isJSONObject(body []byte) bool {
	for _, c := range body {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}
