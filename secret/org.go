package secret

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// An org's key (package secret/master derives it from the secret key)
// makes an ordinary Box: the one a runner of the org holds. The runner
// credential is how a runner host proves to the control plane's runner API
// (server/runnerapi.go) that it is runner ID of org: basic auth ORG/ID and
// this credential.

// RunnerCredential is the password of runner runnerID of the box's org on
// the runner API (server, runnerapi.go): an HMAC of the org key, so only a
// holder of the org's key (its runners, the control plane) makes it, and it
// tells nothing about the key.
func (b *Box) RunnerCredential(org, runnerID string) string {
	mac := hmac.New(sha256.New, b.credKey)
	for _, part := range []string{"terratask runner credential v1", org, runnerID} {
		mac.Write([]byte(part))
		mac.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// CheckRunnerCredential reports, in constant time, whether cred is
// RunnerCredential(org, runnerID) of the box's key or of an old one.
func (b *Box) CheckRunnerCredential(cred, org, runnerID string) bool {
	ok := hmac.Equal([]byte(cred), []byte(b.RunnerCredential(org, runnerID)))
	for _, k := range b.old {
		old := &Box{credKey: k.credKey}
		ok = hmac.Equal([]byte(cred), []byte(old.RunnerCredential(org, runnerID))) || ok
	}
	return ok
}
