package secret

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/terratask/terratask/task"
)

// Decision proofs: only the API decides a plan.
//
// A decision on a waiting plan (task.Decision) reaches the task workflow
// through Temporal, where anyone who can reach the namespace could send one.
// So the API signs each decision it sends with a key derived from the
// secret key (Proof), and the workflow refuses a decision without a valid
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
	return decisionProof(b.decKey, taskID, d)
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
	if hmac.Equal([]byte(d.Proof), []byte(decisionProof(b.decKey, taskID, d))) {
		return true
	}
	for _, k := range b.old {
		if hmac.Equal([]byte(d.Proof), []byte(decisionProof(k.decKey, taskID, d))) {
			return true
		}
	}
	return false
}
