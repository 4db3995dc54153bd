package master

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/task"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	return key
}

func newTestBox(t *testing.T, key []byte, old ...[]byte) *Box {
	t.Helper()
	b, err := New(key, old...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A proof binds the task and every field of the decision; it is made only
// with the secret key, and one made before a key rotation still counts.
func TestDecisionProof(t *testing.T) {
	oldKey := newKey(t)
	b := newTestBox(t, oldKey)
	d := b.Sign("task-1", task.Decision{Approve: false, By: "ops-a", At: time.Date(2026, 12, 7, 1, 2, 3, 4, time.UTC), Comment: "no"})
	if !b.CheckDecision("task-1", d) {
		t.Fatal("a signed decision does not check")
	}
	tampered := map[string]func(task.Decision) task.Decision{
		"approve": func(x task.Decision) task.Decision { x.Approve = true; return x },
		"by":      func(x task.Decision) task.Decision { x.By = "mallory"; return x },
		"at":      func(x task.Decision) task.Decision { x.At = x.At.Add(time.Nanosecond); return x },
		"comment": func(x task.Decision) task.Decision { x.Comment = "yes"; return x },
		"proof":   func(x task.Decision) task.Decision { x.Proof = ""; return x },
	}
	for name, f := range tampered {
		if b.CheckDecision("task-1", f(d)) {
			t.Errorf("a decision with its %s changed still checks", name)
		}
	}
	if b.CheckDecision("task-2", d) {
		t.Error("a proof moved to another task checks")
	}
	other := newTestBox(t, newKey(t))
	if other.CheckDecision("task-1", d) || b.CheckDecision("task-1", other.Sign("task-1", task.Decision{By: "x"})) {
		t.Error("a proof checks under another key")
	}
	// After a rotation to a new key that accepts the old one.
	rotated := newTestBox(t, newKey(t), oldKey)
	if !rotated.CheckDecision("task-1", d) {
		t.Error("a decision signed before the rotation does not check")
	}
	// An org's key (a runner's) makes no proof that checks.
	orgBox, err := b.Org("acme")
	if err != nil {
		t.Fatal(err)
	}
	orgMaster := newTestBox(t, mustOrgKey(t, oldKey, "acme"))
	if b.CheckDecision("task-1", orgMaster.Sign("task-1", task.Decision{By: "runner"})) {
		t.Error("a proof made with an org's key checks")
	}
	_ = orgBox
}

func mustOrgKey(t *testing.T, master []byte, org string) []byte {
	t.Helper()
	k, err := OrgKey(master, org)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// An org's box is the one a runner of the org makes from its org key: what
// one seals the other opens; another org's does not; after a rotation the
// old org key's seals still open.
func TestOrgBoxes(t *testing.T) {
	oldKey := newKey(t)
	b := newTestBox(t, oldKey)
	acme, err := b.Org("acme")
	if err != nil {
		t.Fatal(err)
	}
	runner, err := secret.NewBox(mustOrgKey(t, oldKey, "acme"))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := runner.Seal(task.Secrets{Env: map[string]string{"K": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := acme.Open(sealed); err != nil || s.Env["K"] != "v" {
		t.Fatalf("the control plane's org box: %+v %v", s, err)
	}
	if _, err := b.Open(sealed); err == nil {
		t.Fatal("the secret key's box opens an org's seal")
	}
	other, _ := b.Org("other")
	if _, err := other.Open(sealed); err == nil {
		t.Fatal("another org's box opens acme's seal")
	}
	rotated := newTestBox(t, newKey(t), oldKey)
	acme2, _ := rotated.Org("acme")
	if s, err := acme2.Open(sealed); err != nil || s.Env["K"] != "v" {
		t.Fatalf("after a rotation: %+v %v", s, err)
	}
	if _, err := OrgKey(oldKey, ""); err == nil {
		t.Fatal("an org key without an org")
	}
}
