package secret

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// SigningPrefix starts every secret that signs deliveries, so a leaked one
// is recognisable.
const SigningPrefix = "tts_"

// SigningSecret is the secret that signs an org's notify deliveries (the
// per-task callbacks). Every server derives the same one from the secret
// key, so it never needs storing; it changes only with the secret key.
func (b *Box) SigningSecret(org string) string {
	mac := hmac.New(sha256.New, b.signKey)
	mac.Write([]byte(org))
	return SigningPrefix + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// WebhookSecretContext binds a sealed webhook secret to its webhook (see
// SealBytes), so it cannot be moved to another one unnoticed.
func WebhookSecretContext(org, webhookID string) []byte {
	return []byte("terratask webhook secret\x00" + org + "\x00" + webhookID)
}
