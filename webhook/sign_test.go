package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"strconv"
	"time"
)

// SignStripe returns the Stripe-Signature header value Stripe would send for
// body at time t: "t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>.<body>")>".
func SignStripe(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	io.WriteString(mac, ts)
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// SignGitHub returns the X-Hub-Signature-256 header value GitHub would send for
// body: "sha256=<hex HMAC-SHA256(secret, body)>".
func SignGitHub(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// SignShopify returns the X-Shopify-Hmac-Sha256 header value Shopify would send
// for body: standard base64 of HMAC-SHA256(secret, body).
func SignShopify(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SignStandard returns the webhook-signature header value a Standard Webhooks
// sender would send for delivery id at time t: "v1,<base64 HMAC-SHA256(key,
// "<id>.<unix>.<body>")>", key being the base64 after secret's optional
// "whsec_" prefix. The caller sends webhook-id: id and webhook-timestamp:
// t.Unix() with it. It returns "" if secret is not base64.
func SignStandard(secret, id string, t time.Time, body []byte) string {
	key, err := standardKey(secret)
	if err != nil {
		return ""
	}
	mac := hmac.New(sha256.New, key)
	io.WriteString(mac, id)
	mac.Write([]byte{'.'})
	io.WriteString(mac, strconv.FormatInt(t.Unix(), 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
