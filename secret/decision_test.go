package secret

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/terratask/terratask/task"
)

func newTestBox(t *testing.T) (*Box, []byte) {
	t.Helper()
	key := make([]byte, KeySize)
	_, _ = rand.Read(key)
	b, err := NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	return b, key
}

// A proof binds the task and every field of the decision; it is made only
// with the secret key, and one made before a key rotation still counts.
func TestDecisionProof(t *testing.T) {
	b, oldKey := newTestBox(t)
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
	other, _ := newTestBox(t)
	if other.CheckDecision("task-1", d) || b.CheckDecision("task-1", other.Sign("task-1", task.Decision{By: "x"})) {
		t.Error("a proof checks under another key")
	}
	// After a rotation to a new key that accepts the old one.
	rotated, _ := newTestBox(t)
	if err := rotated.AcceptOld(oldKey); err != nil {
		t.Fatal(err)
	}
	if !rotated.CheckDecision("task-1", d) {
		t.Error("a decision signed before the rotation does not check")
	}
}
