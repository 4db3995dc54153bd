package secret

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
)

// Per-org keys: a runner host holds its org's key, never the secret key.
//
// The control plane holds terratask's secret key (the master key). Each org
// has a key of its own, derived one way from it (OrgKey): a runner of that
// org is given the org key (`terratask keys org`), seals and opens that
// org's task secrets and plan files with it, derives that org's state
// credentials from it, and encrypts its Temporal payloads under it (package
// codec). What the master key alone keys stays on the control plane: the
// proofs of plan decisions, the notify signing secrets, Terraform state at
// rest in the store and the webhooks' secrets. So a runner host of one org
// opens nothing of another org, and cannot decide a plan.

// orgKeyLabel is the HKDF info prefix of an org key; changing it changes
// every org key.
const orgKeyLabel = "terratask org key v1: "

// OrgKey derives org's key from the master secret key.
func OrgKey(master []byte, org string) ([]byte, error) {
	if len(master) != KeySize {
		return nil, fmt.Errorf("secret key must be %d bytes, got %d", KeySize, len(master))
	}
	if org == "" {
		return nil, errors.New("an org key needs an org")
	}
	return hkdf.Key(sha256.New, master, nil, orgKeyLabel+org, KeySize)
}

// masterKeys are the raw keys of a box made from the master key: the current
// one first, then the old ones. Org derives org boxes from them.
type masterKeys struct {
	keys [][]byte
	mu   sync.Mutex
	orgs map[string]*Box
}

// NewMasterBox returns the control plane's box: NewBox(master) with the old
// keys accepted, which can also derive every org's box (Org).
func NewMasterBox(master []byte, old ...[]byte) (*Box, error) {
	b, err := NewBox(master)
	if err != nil {
		return nil, err
	}
	if err := b.AcceptOld(old...); err != nil {
		return nil, err
	}
	keys := [][]byte{append([]byte(nil), master...)}
	for _, k := range old {
		keys = append(keys, append([]byte(nil), k...))
	}
	b.master = &masterKeys{keys: keys, orgs: map[string]*Box{}}
	return b, nil
}

// Org returns org's box: sealing under org's key derived from the current
// master key, opening what org keys of old master keys sealed too. It fails
// on a box not made by NewMasterBox: a runner's box is already its org's.
func (b *Box) Org(org string) (*Box, error) {
	if b.master == nil {
		return nil, errors.New("this box holds an org key, not the secret key: it derives no org keys")
	}
	m := b.master
	m.mu.Lock()
	defer m.mu.Unlock()
	if ob, ok := m.orgs[org]; ok {
		return ob, nil
	}
	keys := make([][]byte, len(m.keys))
	for i, k := range m.keys {
		ok, err := OrgKey(k, org)
		if err != nil {
			return nil, err
		}
		keys[i] = ok
	}
	ob, err := NewBox(keys[0])
	if err != nil {
		return nil, err
	}
	if err := ob.AcceptOld(keys[1:]...); err != nil {
		return nil, err
	}
	if len(m.orgs) < maxCachedOrgs {
		m.orgs[org] = ob
	}
	return ob, nil
}

// maxCachedOrgs bounds the org boxes a master box keeps derived.
const maxCachedOrgs = 4096

// The runner credential: how a runner host proves to the control plane's
// runner API that it is runner ID of org. It sends its org and runner ID
// in headers and the credential as a bearer token.

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
