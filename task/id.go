package task

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// RandomID returns prefix and 128 random bits in lower-case base32 (26
// characters): the form of task, webhook and schedule IDs.
func RandomID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}
