package webhook

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Provider names a webhook signing scheme.
type Provider string

// The supported providers. The string values are what users type at
// registration and what the endpoint store keeps.
const (
	Stripe   Provider = "stripe"   // Stripe-Signature: t=...,v1=<hex>
	GitHub   Provider = "github"   // X-Hub-Signature-256: sha256=<hex>
	Shopify  Provider = "shopify"  // X-Shopify-Hmac-Sha256: <base64>
	Standard Provider = "standard" // webhook-id, webhook-timestamp, webhook-signature: v1,<base64>
)

// ParseProvider returns the Provider named by s, ignoring case and surrounding
// space, and whether s names one.
func ParseProvider(s string) (Provider, bool) {
	p := Provider(strings.ToLower(strings.TrimSpace(s)))
	if !p.known() {
		return "", false
	}
	return p, true
}

func (p Provider) known() bool {
	switch p {
	case Stripe, GitHub, Shopify, Standard:
		return true
	}
	return false
}

const (
	// maxSecretLen bounds a registered secret. Providers issue 32 to 64
	// characters; 1 KiB leaves room for anything a person means to paste.
	maxSecretLen = 1 << 10

	// standardSecretPrefix is the prefix Standard Webhooks (and Svix) put in
	// front of the base64 key. It is optional on input.
	standardSecretPrefix = "whsec_"

	// minStandardKeyLen is the shortest decoded Standard Webhooks key we take:
	// 128 bits. The spec's generators issue 24 to 64 bytes.
	minStandardKeyLen = 16
)

// ValidateSecret checks a secret for provider p at registration time. A secret
// must be non-empty, at most 1 KiB, and without surrounding whitespace (a
// pasted newline would make every delivery fail). For Standard the secret is
// "whsec_" followed by base64 (padded or not) of at least 16 bytes; the prefix
// may be left out. The error wraps ErrBadSecret (or ErrUnknownProvider) and
// says what to fix.
func ValidateSecret(p Provider, secret string) error {
	if !p.known() {
		return fmt.Errorf("%w %q: use one of stripe, github, shopify, standard", ErrUnknownProvider, p)
	}
	if secret == "" {
		return fmt.Errorf("%w: the secret is empty; copy the signing secret from the %s webhook settings", ErrBadSecret, p)
	}
	if len(secret) > maxSecretLen {
		return fmt.Errorf("%w: the secret is %d bytes; the limit is %d: check that you pasted the signing secret and nothing else", ErrBadSecret, len(secret), maxSecretLen)
	}
	if strings.TrimSpace(secret) != secret {
		return fmt.Errorf("%w: the secret starts or ends with whitespace; paste it without surrounding spaces or newlines", ErrBadSecret)
	}
	if p != Standard {
		return nil
	}
	key, err := standardKey(secret)
	if err != nil {
		return fmt.Errorf("%w: a Standard Webhooks secret is %q followed by base64, and the part after the prefix is not valid base64 (%v)", ErrBadSecret, standardSecretPrefix, err)
	}
	if len(key) < minStandardKeyLen {
		return fmt.Errorf("%w: the Standard Webhooks key decodes to %d bytes; it must be at least %d: generate a new secret at the sender", ErrBadSecret, len(key), minStandardKeyLen)
	}
	return nil
}

// standardKey returns the HMAC key of a Standard Webhooks secret: the base64
// after the optional "whsec_" prefix, padded or not.
func standardKey(secret string) ([]byte, error) {
	s := strings.TrimPrefix(secret, standardSecretPrefix)
	if strings.HasSuffix(s, "=") {
		return base64.StdEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
