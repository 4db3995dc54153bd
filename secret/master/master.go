// Package master is the control plane's part of package secret: what the
// secret key itself (the master key) opens or makes, which no runner host
// may hold or link (internal/boundary checks the runner's dependency graph
// for this package).
//
//   - Per-org keys: each org's key is derived one way from the secret key
//     (OrgKey, `terratask keys org`). A runner of that org is given its
//     org's key: it seals and opens that org's task secrets and plan files,
//     derives its state and runner credentials, and encrypts its Temporal
//     payloads under it (codec.NewOrg). Box.Org gives the control plane the
//     same box.
//   - Decision proofs: only the API decides a plan (Box.Sign, CheckDecision).
//
// What else the secret key keys (Terraform state at rest in the store,
// webhook secrets, notify signing) is the embedded secret.Box's, which the
// control plane alone holds under this key.
package master

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/task"
)

// orgKeyLabel is the HKDF info prefix of an org key; changing it changes
// every org key.
const orgKeyLabel = "terratask org key v1: "

// OrgKey derives org's key from the master secret key.
func OrgKey(master []byte, org string) ([]byte, error) {
	if len(master) != secret.KeySize {
		return nil, fmt.Errorf("secret key must be %d bytes, got %d", secret.KeySize, len(master))
	}
	if org == "" {
		return nil, errors.New("an org key needs an org")
	}
	return hkdf.Key(sha256.New, master, nil, orgKeyLabel+org, secret.KeySize)
}

// Box is the control plane's box: the secret key's secret.Box (the old keys
// of rotations accepted), which also derives every org's box and makes and
// checks decision proofs.
type Box struct {
	*secret.Box
	keys    [][]byte // current first, then the old ones
	decKeys [][]byte // the same order

	mu   sync.Mutex
	orgs map[string]*secret.Box
}

// maxCachedOrgs bounds the org boxes a Box keeps derived.
const maxCachedOrgs = 4096

// New returns the control plane's box for the secret key and the old keys
// of earlier rotations.
func New(current []byte, old ...[]byte) (*Box, error) {
	sb, err := secret.NewBox(current)
	if err != nil {
		return nil, err
	}
	if err := sb.AcceptOld(old...); err != nil {
		return nil, err
	}
	b := &Box{Box: sb, orgs: map[string]*secret.Box{}}
	for _, k := range append([][]byte{current}, old...) {
		b.keys = append(b.keys, append([]byte(nil), k...))
		b.decKeys = append(b.decKeys, decisionKey(k))
	}
	return b, nil
}

// Org returns org's box: sealing under org's key derived from the current
// secret key, opening what org keys of old secret keys sealed too.
func (b *Box) Org(org string) (*secret.Box, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ob, ok := b.orgs[org]; ok {
		return ob, nil
	}
	keys := make([][]byte, len(b.keys))
	for i, k := range b.keys {
		ok, err := OrgKey(k, org)
		if err != nil {
			return nil, err
		}
		keys[i] = ok
	}
	ob, err := secret.NewBox(keys[0])
	if err != nil {
		return nil, err
	}
	if err := ob.AcceptOld(keys[1:]...); err != nil {
		return nil, err
	}
	if len(b.orgs) < maxCachedOrgs {
		b.orgs[org] = ob
	}
	return ob, nil
}

// Decision proofs: only the API decides a plan.
//
// A decision on a waiting plan (task.Decision) reaches the task workflow
// through Temporal, where anyone who can reach the namespace could send one.
// So the API signs each decision it sends with a key derived from the
// secret key (Sign), and the workflow refuses a decision without a valid
// proof (workflows, CheckDecision). The proof binds the task, the verdict,
// who decided, when, and the comment: it cannot be moved to another task or
// turned from a rejection into an approval. A parent workflow that decides
// for its child signs its decision the same way, in an activity of a worker
// that holds the secret key (DecisionProof).

func decisionKey(key []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("terratask decision proof v1"))
	return mac.Sum(nil)
}

func decisionProof(dk []byte, taskID string, d task.Decision) string {
	mac := hmac.New(sha256.New, dk)
	for _, f := range []string{taskID, strconv.FormatBool(d.Approve), d.By, d.At.UTC().Format(time.RFC3339Nano), d.Comment} {
		mac.Write([]byte(f))
		mac.Write([]byte{0})
	}
	return hex.EncodeToString(mac.Sum(nil))
}

// DecisionProof is the proof of d, a decision on the plan of task taskID.
func (b *Box) DecisionProof(taskID string, d task.Decision) string {
	return decisionProof(b.decKeys[0], taskID, d)
}

// Sign returns d with its proof for task taskID.
func (b *Box) Sign(taskID string, d task.Decision) task.Decision {
	d.Proof = b.DecisionProof(taskID, d)
	return d
}

// CheckDecision reports whether d carries a valid proof for task taskID,
// made with the current key or an old one (a decision signed just before a
// key rotation still counts).
func (b *Box) CheckDecision(taskID string, d task.Decision) bool {
	if d.Proof == "" {
		return false
	}
	for _, dk := range b.decKeys {
		if hmac.Equal([]byte(d.Proof), []byte(decisionProof(dk, taskID, d))) {
			return true
		}
	}
	return false
}
