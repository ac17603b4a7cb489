package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzSecrets are the endpoints' secrets in FuzzVerify, by provider.
var fuzzSecrets = map[Provider]string{
	Stripe:   "whsec_fuzz_stripe",
	GitHub:   "fuzz-github",
	Shopify:  "fuzz-shopify",
	Standard: "whsec_" + base64.StdEncoding.EncodeToString([]byte("fuzz standard key 0123")),
}

var fuzzProviders = []Provider{Stripe, GitHub, Shopify, Standard}

// FuzzVerify feeds hostile signature headers, ids, timestamps and bodies to
// every provider. Verify must not panic, must fail only with a documented
// sentinel, and must succeed only when an independent check (the spec applied
// naively, with crypto/hmac) finds a matching signature and a fresh timestamp.
func FuzzVerify(f *testing.F) {
	body := []byte(`{"id":"evt_1","type":"invoice.paid","data":{"n":1}}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	f.Add(uint8(0), SignStripe(fuzzSecrets[Stripe], now, body), "", "", body)
	f.Add(uint8(0), "t="+ts+",v0=ab,v1="+strings.Repeat("0", 64)+","+SignStripe(fuzzSecrets[Stripe], now, body)[len("t=")+len(ts)+1:], "", "", body)
	f.Add(uint8(0), "t="+ts+",v1=zz", "", "", []byte(`[]`))
	f.Add(uint8(1), SignGitHub(fuzzSecrets[GitHub], body), "d1", "", body)
	f.Add(uint8(1), "sha256=", "", "", []byte{})
	f.Add(uint8(2), SignShopify(fuzzSecrets[Shopify], body), "w1", "", body)
	f.Add(uint8(2), "====", "", "", body)
	f.Add(uint8(3), SignStandard(fuzzSecrets[Standard], "msg_1", now, body), "msg_1", ts, body)
	f.Add(uint8(3), "v1a,xyz v1,abc= "+SignStandard(fuzzSecrets[Standard], "msg_1", now, body), "msg_1", ts, body)
	f.Add(uint8(3), SignStandard(fuzzSecrets[Standard], "", now, []byte("null")), "", ts, []byte("null"))

	f.Fuzz(func(t *testing.T, pi uint8, sig, id, ts string, body []byte) {
		p := fuzzProviders[int(pi)%len(fuzzProviders)]
		secret := fuzzSecrets[p]
		hs := map[string]string{}
		switch p {
		case Stripe:
			hs["Stripe-Signature"] = sig
		case GitHub:
			hs["X-Hub-Signature-256"] = sig
			hs["X-Github-Delivery"] = id
			hs["X-Github-Event"] = ts
		case Shopify:
			hs["X-Shopify-Hmac-Sha256"] = sig
			hs["X-Shopify-Webhook-Id"] = id
			hs["X-Shopify-Topic"] = ts
		case Standard:
			hs["Webhook-Signature"] = sig
			hs["Webhook-Id"] = id
			hs["Webhook-Timestamp"] = ts
		}
		h := func(name string) string { return hs[name] }

		d, err := Verifier{Provider: p, Now: fixedNow}.Verify(secret, h, body)
		if err != nil {
			for _, known := range []error{ErrMissingSignature, ErrMalformedSignature, ErrBadSignature, ErrStaleTimestamp, ErrMalformedBody} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("%s: undocumented error %v", p, err)
		}

		// Verify accepted: the delivery must really be signed.
		switch p {
		case Stripe:
			var t0 string
			var v1s []string
			for item := range strings.SplitSeq(sig, ",") {
				k, v, _ := strings.Cut(strings.TrimSpace(item), "=")
				switch k {
				case "t":
					t0 = v
				case "v1":
					v1s = append(v1s, v)
				}
			}
			want := hex.EncodeToString(oracleMAC([]byte(secret), t0+"."+string(body)))
			if !containsFold(v1s, want) {
				t.Fatalf("Stripe accepted %q for body %q; no v1 is %s", sig, body, want)
			}
			checkFresh(t, t0)
			var ev struct{ ID, Type string }
			if json.Unmarshal(body, &ev) != nil || d.ID != ev.ID || d.Event != ev.Type {
				t.Fatalf("Stripe Delivery %+v for body %q", d, body)
			}
		case GitHub:
			want := hex.EncodeToString(oracleMAC([]byte(secret), string(body)))
			if !strings.HasPrefix(sig, "sha256=") || !strings.EqualFold(sig[len("sha256="):], want) {
				t.Fatalf("GitHub accepted %q for body %q; want sha256=%s", sig, body, want)
			}
			if d.ID != id || d.Event != ts {
				t.Fatalf("GitHub Delivery %+v; want ID %q, Event %q", d, id, ts)
			}
		case Shopify:
			want := base64.StdEncoding.EncodeToString(oracleMAC([]byte(secret), string(body)))
			if sig != want {
				t.Fatalf("Shopify accepted %q for body %q; want %s", sig, body, want)
			}
			if d.ID != id || d.Event != ts {
				t.Fatalf("Shopify Delivery %+v; want ID %q, Event %q", d, id, ts)
			}
		case Standard:
			key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
			want := "v1," + base64.StdEncoding.EncodeToString(oracleMAC(key, id+"."+ts+"."+string(body)))
			if !contains(strings.Fields(sig), want) {
				t.Fatalf("Standard accepted %q for id %q, ts %q, body %q; want %s", sig, id, ts, body, want)
			}
			checkFresh(t, ts)
			if d.ID != id {
				t.Fatalf("Standard Delivery %+v; want ID %q", d, id)
			}
		}
	})
}

func oracleMAC(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// checkFresh fails unless ts is a unix time within five minutes of now.
func checkFresh(t *testing.T, ts string) {
	t.Helper()
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n < now.Add(-5*time.Minute).Unix() || n > now.Add(5*time.Minute).Unix() {
		t.Fatalf("accepted timestamp %q; now is %d", ts, now.Unix())
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
