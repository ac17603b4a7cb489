package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"
)

// now is the fixed clock of every test.
var now = time.Unix(1700000000, 0)

func fixedNow() time.Time { return now }

// headers builds a Header from name, value pairs. It fails the test if Verify
// asks for a name that is not in canonical MIME form.
func headers(t testing.TB, kv ...string) Header {
	hh := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		hh.Set(kv[i], kv[i+1])
	}
	return func(name string) string {
		if c := textproto.CanonicalMIMEHeaderKey(name); c != name {
			t.Errorf("Verify asked for header %q; want canonical %q", name, c)
		}
		return hh.Get(name)
	}
}

// macSHA256 is the tests' own HMAC, independent of the Sign* helpers.
func macSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func unixStr(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// wantErr fails unless err is target (nil meaning no error).
func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	switch {
	case target == nil && err != nil:
		t.Fatalf("%s: unexpected error %v", what, err)
	case target != nil && !errors.Is(err, target):
		t.Fatalf("%s: error %v; want %v", what, err, target)
	}
}

func TestParseProvider(t *testing.T) {
	f := func(s string, want Provider, wantOK bool) {
		t.Helper()
		got, ok := ParseProvider(s)
		if got != want || ok != wantOK {
			t.Fatalf("ParseProvider(%q) = %q, %v; want %q, %v", s, got, ok, want, wantOK)
		}
	}
	f("stripe", Stripe, true)
	f("github", GitHub, true)
	f("shopify", Shopify, true)
	f("standard", Standard, true)
	f(" GitHub ", GitHub, true)
	f("", "", false)
	f("svix", "", false)
	f("stripe2", "", false)
}

func TestValidateSecret(t *testing.T) {
	f := func(p Provider, secret string, want error) {
		t.Helper()
		err := ValidateSecret(p, secret)
		wantErr(t, err, want, "ValidateSecret("+string(p)+", "+strconv.Quote(secret)+")")
		if err != nil && !strings.Contains(err.Error(), ":") {
			t.Fatalf("error %q says nothing a person can act on", err)
		}
	}
	f(Stripe, "whsec_abc123", nil)
	f(GitHub, "It's a Secret to Everybody", nil)
	f(Shopify, "shpss_0123456789abcdef", nil)
	f(Stripe, "", ErrBadSecret)
	f(GitHub, strings.Repeat("x", 1024), nil)
	f(GitHub, strings.Repeat("x", 1025), ErrBadSecret)
	f(Shopify, "secret\n", ErrBadSecret)
	f(Shopify, " secret", ErrBadSecret)
	f("", "secret", ErrUnknownProvider)
	f("GitHub", "secret", ErrUnknownProvider) // a Provider value is lower case; ParseProvider first

	f(Standard, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", nil)
	f(Standard, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", nil)
	f(Standard, "whsec_"+base64.StdEncoding.EncodeToString(make([]byte, 16)), nil)    // padded
	f(Standard, "whsec_"+base64.RawStdEncoding.EncodeToString(make([]byte, 16)), nil) // unpadded
	f(Standard, "whsec_"+base64.StdEncoding.EncodeToString(make([]byte, 15)), ErrBadSecret)
	f(Standard, "whsec_not base64!", ErrBadSecret)
	f(Standard, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS$", ErrBadSecret)
	f(Standard, "whsec_", ErrBadSecret)
	f(Standard, "whsec_"+base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe}), ErrBadSecret)
}

func TestVerifyMisconfigured(t *testing.T) {
	body := []byte(`{"id":"x"}`)
	for _, p := range []Provider{Stripe, GitHub, Shopify, Standard} {
		// Anyone can compute a MAC under the empty key: never accept it.
		h := headers(t,
			"Stripe-Signature", SignStripe("", now, body),
			"X-Hub-Signature-256", SignGitHub("", body),
			"X-Shopify-Hmac-Sha256", SignShopify("", body),
			"webhook-id", "msg_1", "webhook-timestamp", unixStr(now), "webhook-signature", SignStandard("", "msg_1", now, body))
		_, err := Verifier{Provider: p, Now: fixedNow}.Verify("", h, body)
		wantErr(t, err, ErrBadSecret, string(p)+" with empty secret")
	}
	_, err := Verifier{Provider: "svix"}.Verify("secret", headers(t), body)
	wantErr(t, err, ErrUnknownProvider, "unknown provider")

	// A Standard secret that is not base64 gets past no one, even if the
	// sender signed with its raw bytes.
	raw := "not base64!"
	sig := "v1," + base64.StdEncoding.EncodeToString(macSHA256([]byte(raw), "msg_1."+unixStr(now)+"."+string(body)))
	h := headers(t, "webhook-id", "msg_1", "webhook-timestamp", unixStr(now), "webhook-signature", sig)
	_, err = Verifier{Provider: Standard, Now: fixedNow}.Verify(raw, h, body)
	wantErr(t, err, ErrBadSecret, "Standard with non-base64 secret")
}

func TestStripe(t *testing.T) {
	const secret = "whsec_stripe_test_secret"
	body := []byte(`{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"invoice.paid","data":{"object":{"amount_paid":2000}}}`)
	v := Verifier{Provider: Stripe, Now: fixedNow}
	sigAt := func(secret string, ts time.Time, body []byte) string {
		return hex.EncodeToString(macSHA256([]byte(secret), unixStr(ts)+"."+string(body)))
	}
	good := sigAt(secret, now, body)
	goodHeader := "t=" + unixStr(now) + ",v1=" + good
	if got := SignStripe(secret, now, body); got != goodHeader {
		t.Fatalf("SignStripe = %q; want %q", got, goodHeader)
	}

	f := func(v Verifier, header string, body []byte, want error) {
		t.Helper()
		h := headers(t)
		if header != "-" { // "-": no header at all
			h = headers(t, "Stripe-Signature", header)
		}
		d, err := v.Verify(secret, h, body)
		wantErr(t, err, want, "Stripe-Signature "+strconv.Quote(header))
		if want == nil && (d.ID != "evt_1NG8Du2eZvKYlo2CUI79vXWy" || d.Event != "invoice.paid") {
			t.Fatalf("Delivery = %+v; want the body's id and type", d)
		}
	}
	// Accepted.
	f(v, goodHeader, body, nil)
	f(v, "t="+unixStr(now)+",v1="+strings.ToUpper(good), body, nil)
	f(v, "v1="+good+",t="+unixStr(now), body, nil)
	f(v, "t="+unixStr(now)+", v1="+good, body, nil)
	f(v, "t="+unixStr(now)+",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39,v1="+good, body, nil)
	f(v, "t="+unixStr(now)+",v1="+sigAt("whsec_old", now, body)+",v1="+good, body, nil) // rotation
	f(v, "t="+unixStr(now)+",v1="+good+",v1="+sigAt("whsec_new", now, body), body, nil)

	// Wrong secret, tampered body.
	f(v, "t="+unixStr(now)+",v1="+sigAt("whsec_other", now, body), body, ErrBadSignature)
	f(v, goodHeader, []byte(strings.Replace(string(body), "2000", "9000", 1)), ErrBadSignature)
	f(v, goodHeader, append([]byte(nil), append(body, ' ')...), ErrBadSignature)
	f(v, "t="+unixStr(now.Add(time.Second))+",v1="+good, body, ErrBadSignature) // t is signed
	f(v, "t="+unixStr(now)+",v0="+good, body, ErrMalformedSignature)            // v0 never counts

	// Missing.
	f(v, "-", body, ErrMissingSignature)
	f(v, "", body, ErrMissingSignature)

	// Malformed.
	f(v, "v1="+good, body, ErrMalformedSignature)
	f(v, "t="+unixStr(now), body, ErrMalformedSignature)
	f(v, "t=abc,v1="+good, body, ErrMalformedSignature)
	f(v, "t=-1700000000,v1="+good, body, ErrMalformedSignature)
	f(v, "t=+1700000000,v1="+good, body, ErrMalformedSignature)
	f(v, "t=,v1="+good, body, ErrMalformedSignature)
	f(v, "t=1700000000,t=1700000000,v1="+good, body, ErrMalformedSignature)
	f(v, "t="+unixStr(now)+",v1="+good[:62]+"zz", body, ErrMalformedSignature)
	f(v, "t="+unixStr(now)+",v1="+good[:32], body, ErrMalformedSignature)
	f(v, "t="+unixStr(now)+",v1="+good+"00", body, ErrMalformedSignature)
	f(v, "t="+unixStr(now)+",v1="+base64.StdEncoding.EncodeToString(macSHA256([]byte(secret), "x")), body, ErrMalformedSignature)
	f(v, "t="+unixStr(now)+",v1=", body, ErrMalformedSignature)
	f(v, "garbage", body, ErrMalformedSignature)
	f(v, ","+goodHeader, body, ErrMalformedSignature)
	f(v, goodHeader+",", body, ErrMalformedSignature)
	f(v, "t="+unixStr(now)+";v1="+good, body, ErrMalformedSignature)
	f(v, "t=99999999999999999999,v1="+good, body, ErrMalformedSignature)
	f(v, goodHeader+strings.Repeat(",v1="+good, 15), body, nil) // 16 signatures
	f(v, goodHeader+strings.Repeat(",v1="+good, 16), body, ErrMalformedSignature)
	f(v, goodHeader+strings.Repeat(",v0=x", 16), body, ErrMalformedSignature)
	f(v, goodHeader+",v0="+strings.Repeat("a", 8<<10), body, ErrMalformedSignature)

	// Timestamps: checked after the MAC, both directions, custom tolerance.
	at := func(d time.Duration) string {
		return "t=" + unixStr(now.Add(d)) + ",v1=" + sigAt(secret, now.Add(d), body)
	}
	f(v, at(-6*time.Minute), body, ErrStaleTimestamp)
	f(v, at(6*time.Minute), body, ErrStaleTimestamp)
	f(v, at(-5*time.Minute), body, nil)
	f(v, at(5*time.Minute), body, nil)
	f(v, at(-5*time.Minute-time.Second), body, ErrStaleTimestamp)
	f(v, "t=1,v1="+sigAt(secret, time.Unix(1, 0), body), body, ErrStaleTimestamp)
	f(v, "t=9223372036854775807,v1="+hex.EncodeToString(macSHA256([]byte(secret), "9223372036854775807."+string(body))), body, ErrStaleTimestamp)
	f(v, "t="+unixStr(now.Add(-6*time.Minute))+",v1="+sigAt("whsec_other", now.Add(-6*time.Minute), body), body, ErrBadSignature)
	wide := Verifier{Provider: Stripe, Now: fixedNow, Tolerance: 10 * time.Minute}
	f(wide, at(-6*time.Minute), body, nil)
	f(wide, at(9*time.Minute), body, nil)
	f(wide, at(-11*time.Minute), body, ErrStaleTimestamp)
	narrow := Verifier{Provider: Stripe, Now: fixedNow, Tolerance: time.Minute}
	f(narrow, at(-2*time.Minute), body, ErrStaleTimestamp)
	f(narrow, at(2*time.Minute), body, ErrStaleTimestamp)
	f(narrow, at(-59*time.Second), body, nil)

	// The body: authentic but not an event object.
	g := func(body string, want error, wantID, wantEvent string) {
		t.Helper()
		d, err := v.Verify(secret, headers(t, "Stripe-Signature", SignStripe(secret, now, []byte(body))), []byte(body))
		wantErr(t, err, want, "body "+body)
		if d.ID != wantID || d.Event != wantEvent {
			t.Fatalf("body %s: Delivery = %+v; want ID %q, Event %q", body, d, wantID, wantEvent)
		}
	}
	g(`{"id":"evt_1","type":"charge.succeeded"}`, nil, "evt_1", "charge.succeeded")
	g(" \n{\"id\":\"evt_1\"}", nil, "evt_1", "")
	g(`{"object":"event"}`, nil, "", "") // no id: not fatal, no dedup
	g(`null`, ErrMalformedBody, "", "")
	g(`[{"id":"evt_1"}]`, ErrMalformedBody, "", "")
	g(`"evt_1"`, ErrMalformedBody, "", "")
	g(``, ErrMalformedBody, "", "")
	g(`{"id":"evt_1"`, ErrMalformedBody, "", "")
	g(`{"id":5,"type":"x"}`, ErrMalformedBody, "", "")
}

func TestGitHub(t *testing.T) {
	// The vector GitHub publishes in "Validating webhook deliveries".
	const (
		docSecret = "It's a Secret to Everybody"
		docBody   = "Hello, World!"
		docSig    = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	)
	if got := SignGitHub(docSecret, []byte(docBody)); got != docSig {
		t.Fatalf("SignGitHub = %q; want GitHub's published %q", got, docSig)
	}

	const secret = "gh-hook-secret"
	body := []byte(`{"action":"opened","number":42,"repository":{"full_name":"octo/hello"}}`)
	good := "sha256=" + hex.EncodeToString(macSHA256([]byte(secret), string(body)))
	v := Verifier{Provider: GitHub}
	f := func(secret string, h Header, body []byte, want error, wantD Delivery) {
		t.Helper()
		d, err := v.Verify(secret, h, body)
		wantErr(t, err, want, "GitHub")
		if d != wantD {
			t.Fatalf("Delivery = %+v; want %+v", d, wantD)
		}
	}
	sig := func(s string) Header {
		return headers(t, "X-Hub-Signature-256", s, "X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "X-GitHub-Event", "pull_request")
	}
	want := Delivery{ID: "72d3162e-cc78-11e3-81ab-4c9367dc0958", Event: "pull_request"}
	f(docSecret, headers(t, "X-Hub-Signature-256", docSig), []byte(docBody), nil, Delivery{}) // no id: not fatal
	f(secret, sig(good), body, nil, want)
	f(secret, sig("sha256="+strings.ToUpper(good[7:])), body, nil, want)
	f(secret, headers(t, "x-hub-signature-256", good, "x-github-delivery", "d1", "x-github-event", "push"), body, nil, Delivery{ID: "d1", Event: "push"})

	f("other-secret", sig(good), body, ErrBadSignature, Delivery{})
	f(secret, sig(good), append(body[:len(body):len(body)], '\n'), ErrBadSignature, Delivery{})
	f(secret, sig(good), []byte(strings.Replace(string(body), "42", "43", 1)), ErrBadSignature, Delivery{})

	f(secret, headers(t, "X-GitHub-Delivery", "d1"), body, ErrMissingSignature, Delivery{})
	f(secret, sig(""), body, ErrMissingSignature, Delivery{})
	// The SHA-1 header alone is not enough.
	f(secret, headers(t, "X-Hub-Signature", "sha1=0123456789abcdef0123456789abcdef01234567"), body, ErrMissingSignature, Delivery{})

	for _, bad := range []string{
		good[len("sha256="):],             // no prefix
		"SHA256=" + good[len("sha256="):], // prefix is lower case
		"sha1=" + good[len("sha256="):],
		"sha256=" + good[len("sha256="):len(good)-2] + "zz",
		"sha256=" + good[len("sha256="):len(good)-2],
		good + "00",
		"sha256= " + good[len("sha256="):],
		"sha256=",
		"sha256=" + base64.StdEncoding.EncodeToString(macSHA256([]byte(secret), string(body))),
		good + strings.Repeat(" ", 8<<10),
	} {
		f(secret, sig(bad), body, ErrMalformedSignature, Delivery{})
	}
	// Hostile id and event headers are refused too.
	f(secret, headers(t, "X-Hub-Signature-256", good, "X-GitHub-Event", strings.Repeat("e", 8<<10+1)), body, ErrMalformedSignature, Delivery{})
}

func TestShopify(t *testing.T) {
	const secret = "shpss_8d1f8b0e2c"
	body := []byte(`{"id":820982911946154508,"email":"jon@example.com","total_price":"254.98"}`)
	good := base64.StdEncoding.EncodeToString(macSHA256([]byte(secret), string(body)))
	if got := SignShopify(secret, body); got != good {
		t.Fatalf("SignShopify = %q; want %q", got, good)
	}
	v := Verifier{Provider: Shopify}
	f := func(secret string, h Header, body []byte, want error, wantD Delivery) {
		t.Helper()
		d, err := v.Verify(secret, h, body)
		wantErr(t, err, want, "Shopify")
		if d != wantD {
			t.Fatalf("Delivery = %+v; want %+v", d, wantD)
		}
	}
	sig := func(s string) Header {
		return headers(t, "X-Shopify-Hmac-Sha256", s, "X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "X-Shopify-Event-Id", "evt-9", "X-Shopify-Topic", "orders/create")
	}
	f(secret, sig(good), body, nil, Delivery{ID: "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", Event: "orders/create"})
	f(secret, headers(t, "X-Shopify-Hmac-Sha256", good, "X-Shopify-Event-Id", "evt-9", "X-Shopify-Topic", "orders/paid"), body, nil, Delivery{ID: "evt-9", Event: "orders/paid"})
	f(secret, headers(t, "X-Shopify-Hmac-Sha256", good), body, nil, Delivery{})

	f("other", sig(good), body, ErrBadSignature, Delivery{})
	f(secret, sig(good), []byte(strings.Replace(string(body), "254.98", "0.01", 1)), ErrBadSignature, Delivery{})

	f(secret, headers(t, "X-Shopify-Topic", "orders/create"), body, ErrMissingSignature, Delivery{})
	f(secret, sig(""), body, ErrMissingSignature, Delivery{})

	mac := macSHA256([]byte(secret), string(body))
	for _, bad := range []string{
		"not base64 at all!",
		hex.EncodeToString(mac),
		base64.RawStdEncoding.EncodeToString(mac), // no padding
		base64.StdEncoding.EncodeToString(mac[:16]),
		base64.StdEncoding.EncodeToString(append(mac, 0)),
		good[:42] + "\n=",
		" " + good[1:],
		good[:42] + "B=", // non-zero padding bits: not the canonical encoding
		"sha256=" + good,
		strings.Repeat("A", 8<<10+1),
	} {
		f(secret, sig(bad), body, ErrMalformedSignature, Delivery{})
	}
}

func TestStandard(t *testing.T) {
	// The vector published with the Standard Webhooks reference libraries.
	const (
		docSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		docID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		docTS     = "1614265330"
		docBody   = `{"test": 2432232314}`
		docSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	docTime := time.Unix(1614265330, 0)
	if got := SignStandard(docSecret, docID, docTime, []byte(docBody)); got != docSig {
		t.Fatalf("SignStandard = %q; want the published %q", got, docSig)
	}
	for _, secret := range []string{docSecret, strings.TrimPrefix(docSecret, "whsec_")} {
		h := headers(t, "webhook-id", docID, "webhook-timestamp", docTS, "webhook-signature", docSig)
		d, err := Verifier{Provider: Standard, Now: func() time.Time { return docTime }}.Verify(secret, h, []byte(docBody))
		if err != nil || d != (Delivery{ID: docID}) {
			t.Fatalf("published vector with secret %q: %+v, %v", secret, d, err)
		}
	}

	key := []byte("0123456789abcdef0123456789")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	const id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
	body := []byte(`{"type":"invoice.paid","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"inv_1"}}`)
	sigAt := func(key []byte, id string, ts time.Time, body []byte) string {
		return "v1," + base64.StdEncoding.EncodeToString(macSHA256(key, id+"."+unixStr(ts)+"."+string(body)))
	}
	good := sigAt(key, id, now, body)
	if got := SignStandard(secret, id, now, body); got != good {
		t.Fatalf("SignStandard = %q; want %q", got, good)
	}
	if got := SignStandard(strings.TrimPrefix(secret, "whsec_"), id, now, body); got != good {
		t.Fatalf("SignStandard without prefix = %q; want %q", got, good)
	}
	if got := SignStandard("whsec_!!", id, now, body); got != "" {
		t.Fatalf("SignStandard with a non-base64 secret = %q; want \"\"", got)
	}

	v := Verifier{Provider: Standard, Now: fixedNow}
	f := func(v Verifier, secret, hid, ts, sig string, body []byte, want error) {
		t.Helper()
		kv := []string{"webhook-id", hid, "webhook-timestamp", ts}
		if sig != "-" {
			kv = append(kv, "webhook-signature", sig)
		}
		d, err := v.Verify(secret, headers(t, kv...), body)
		wantErr(t, err, want, "webhook-signature "+strconv.Quote(sig))
		if want == nil && d != (Delivery{ID: hid, Event: "invoice.paid"}) {
			t.Fatalf("Delivery = %+v; want ID %q, Event invoice.paid", d, hid)
		}
	}
	ts := unixStr(now)
	f(v, secret, id, ts, good, body, nil)
	f(v, strings.TrimPrefix(secret, "whsec_"), id, ts, good, body, nil)
	f(v, "whsec_"+base64.RawStdEncoding.EncodeToString(key), id, ts, good, body, nil)
	f(v, secret, id, ts, sigAt([]byte("old key 0123456789"), id, now, body)+" "+good, body, nil) // rotation
	f(v, secret, id, ts, "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== "+good, body, nil)
	f(v, secret, id, ts, "  "+good+"\t", body, nil)
	f(v, secret, "", ts, sigAt(key, "", now, body), body, nil) // no webhook-id: signed as "", not fatal

	// Wrong key, tampered body, id or timestamp.
	f(v, "whsec_"+base64.StdEncoding.EncodeToString([]byte("another key 01234567")), id, ts, good, body, ErrBadSignature)
	f(v, secret, id, ts, good, []byte(strings.Replace(string(body), "inv_1", "inv_2", 1)), ErrBadSignature)
	f(v, secret, "msg_other", ts, good, body, ErrBadSignature)
	f(v, secret, id, unixStr(now.Add(time.Second)), good, body, ErrBadSignature)
	f(v, secret, "", ts, good, body, ErrBadSignature)
	// The secret's text is not the key.
	f(v, secret, id, ts, "v1,"+base64.StdEncoding.EncodeToString(macSHA256([]byte(secret), id+"."+ts+"."+string(body))), body, ErrBadSignature)

	// Missing.
	f(v, secret, id, ts, "-", body, ErrMissingSignature)
	f(v, secret, id, ts, "", body, ErrMissingSignature)

	// Malformed.
	mac := macSHA256(key, id+"."+ts+"."+string(body))
	for _, bad := range []string{
		"v1a,abc", // no v1 at all
		"   ",     // only space
		"v1",      // no comma
		good[3:],  // no version
		"v1=" + good[3:],
		"v1," + hex.EncodeToString(mac),
		"v1," + base64.RawStdEncoding.EncodeToString(mac),
		"v1," + base64.URLEncoding.EncodeToString(mac) + "x",
		"v1," + base64.StdEncoding.EncodeToString(mac[:31]),
		"v1,!!!! " + good,
		good + " garbage",
		strings.TrimSpace(strings.Repeat(good+" ", 17)),
		good + " v1a," + strings.Repeat("A", 8<<10),
	} {
		f(v, secret, id, ts, bad, body, ErrMalformedSignature)
	}
	f(v, secret, id, ts, strings.TrimSpace(strings.Repeat(good+" ", 16)), body, nil)
	f(v, secret, id, "", good, body, ErrMalformedSignature)
	f(v, secret, id, "abc", good, body, ErrMalformedSignature)
	f(v, secret, id, "1700000000.0", good, body, ErrMalformedSignature)
	f(v, secret, id, "-1700000000", good, body, ErrMalformedSignature)
	f(v, secret, strings.Repeat("i", 8<<10+1), ts, good, body, ErrMalformedSignature)

	// Timestamps.
	at := func(v Verifier, d time.Duration, want error) {
		t.Helper()
		f(v, secret, id, unixStr(now.Add(d)), sigAt(key, id, now.Add(d), body), body, want)
	}
	at(v, -6*time.Minute, ErrStaleTimestamp)
	at(v, 6*time.Minute, ErrStaleTimestamp)
	at(v, -5*time.Minute, nil)
	at(v, 5*time.Minute, nil)
	at(v, -5*time.Minute-time.Second, ErrStaleTimestamp)
	f(v, secret, id, unixStr(now.Add(-time.Hour)), sigAt([]byte("other key 0123456789"), id, now.Add(-time.Hour), body), body, ErrBadSignature)
	wide := Verifier{Provider: Standard, Now: fixedNow, Tolerance: 10 * time.Minute}
	at(wide, -6*time.Minute, nil)
	at(wide, 6*time.Minute, nil)
	at(wide, 11*time.Minute, ErrStaleTimestamp)
	narrow := Verifier{Provider: Standard, Now: fixedNow, Tolerance: 30 * time.Second}
	at(narrow, -time.Minute, ErrStaleTimestamp)
	at(narrow, time.Minute, ErrStaleTimestamp)
	at(narrow, 29*time.Second, nil)

	// Event is the body's "type" when the body is an object that has one.
	g := func(body, wantEvent string) {
		t.Helper()
		b := []byte(body)
		d, err := v.Verify(secret, headers(t, "webhook-id", id, "webhook-timestamp", ts, "webhook-signature", sigAt(key, id, now, b)), b)
		if err != nil || d != (Delivery{ID: id, Event: wantEvent}) {
			t.Fatalf("body %s: %+v, %v; want ID %q, Event %q", body, d, err, id, wantEvent)
		}
	}
	g(`{"type":"user.created","data":{}}`, "user.created")
	g(`{"data":{}}`, "")
	g(`{"type":5}`, "")
	g(`[{"type":"x"}]`, "")
	g(`"text"`, "")
	g(``, "")
	g(`not json`, "")
}

func TestDefaultClock(t *testing.T) {
	// Zero Now and Tolerance: time.Now and five minutes.
	body := []byte(`{"id":"evt_1","type":"ping"}`)
	v := Verifier{Provider: Stripe}
	if _, err := v.Verify("s", headers(t, "Stripe-Signature", SignStripe("s", time.Now(), body)), body); err != nil {
		t.Fatalf("fresh signature: %v", err)
	}
	_, err := v.Verify("s", headers(t, "Stripe-Signature", SignStripe("s", time.Now().Add(-6*time.Minute), body)), body)
	wantErr(t, err, ErrStaleTimestamp, "six minutes old with the default tolerance")
}

func BenchmarkVerify(b *testing.B) {
	body := []byte(`{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"invoice.paid","data":{"object":{"amount_paid":2000,"currency":"usd","customer":"cus_NffrFeUfNV2Hib"}}}`)
	std := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789"))
	cases := []struct {
		p      Provider
		secret string
		h      Header
	}{
		{Stripe, "s", headers(b, "Stripe-Signature", SignStripe("s", now, body))},
		{GitHub, "s", headers(b, "X-Hub-Signature-256", SignGitHub("s", body), "X-GitHub-Delivery", "d1", "X-GitHub-Event", "push")},
		{Shopify, "s", headers(b, "X-Shopify-Hmac-Sha256", SignShopify("s", body), "X-Shopify-Webhook-Id", "w1", "X-Shopify-Topic", "orders/create")},
		{Standard, std, headers(b, "webhook-id", "msg_1", "webhook-timestamp", unixStr(now), "webhook-signature", SignStandard(std, "msg_1", now, body))},
	}
	for _, c := range cases {
		b.Run(string(c.p), func(b *testing.B) {
			v := Verifier{Provider: c.p, Now: fixedNow}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := v.Verify(c.secret, c.h, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestStandardSvixHeaders: Svix sends the Standard Webhooks scheme under
// svix-* header names; they verify like webhook-*, never mixed with them.
func TestStandardSvixHeaders(t *testing.T) {
	const (
		docSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		docID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		docTS     = "1614265330"
		docBody   = `{"test": 2432232314}`
		docSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	v := Verifier{Provider: Standard, Now: func() time.Time { return time.Unix(1614265330, 0) }}
	d, err := v.Verify(docSecret, headers(t, "svix-id", docID, "svix-timestamp", docTS, "svix-signature", docSig), []byte(docBody))
	if err != nil || d != (Delivery{ID: docID}) {
		t.Fatalf("svix headers: %+v, %v", d, err)
	}
	// webhook-signature wins; its own id and timestamp are then required.
	_, err = v.Verify(docSecret, headers(t, "svix-id", docID, "svix-timestamp", docTS, "webhook-signature", docSig), []byte(docBody))
	wantErr(t, err, ErrMalformedSignature, "webhook-signature with svix-timestamp")
	_, err = v.Verify(docSecret, headers(t, "svix-id", docID, "svix-timestamp", docTS, "svix-signature", "v1,"+strings.Repeat("A", 43)+"="), []byte(docBody))
	wantErr(t, err, ErrBadSignature, "svix headers, wrong signature")
	_, err = v.Verify(docSecret, headers(t, "svix-id", docID, "svix-timestamp", docTS), []byte(docBody))
	wantErr(t, err, ErrMissingSignature, "no signature header of either family")
}
