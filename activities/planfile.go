package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// placeSavedPlan makes sure the work dir holds the approved plan file whose
// SHA-256 is digest: the one the plan step left on this host, or else the
// sealed copy in the store (another host planned, or this host's work dir
// was reset by a new init).
func (s *stepRun) placeSavedPlan(ctx context.Context, digest string) error {
	p := s.paths
	if b, err := os.ReadFile(p.planFile); err == nil && digestOf(b) == digest {
		s.book.runner(task.LevelInfo, "applying the approved plan %s saved on this host", short(digest))
		return nil
	}
	if s.r.Plans == nil || s.r.Secrets == nil {
		return internalErrorf("the approved plan is not on this host, and this runner cannot read it from the store")
	}
	org := orgOf(s.in.Task)
	f, err := s.r.Plans.GetPlanFile(ctx, org, s.in.Task.ID)
	if errors.Is(err, store.ErrNotFound) {
		return internalErrorf("the approved plan %s is not kept in the store", short(digest))
	}
	if err != nil {
		return transientError("reading the approved plan from the store", err)
	}
	if f.Digest != digest {
		return internalErrorf("the plan kept in the store (%s) is not the approved plan (%s)", short(f.Digest), short(digest))
	}
	plain, err := s.r.Secrets.OpenBytes(f.Data, planFileContext(org, s.in.Task.ID, digest))
	if err != nil {
		return configErrorf("cannot open the approved plan: this runner's secret key does not match the one that sealed it")
	}
	if digestOf(plain) != digest {
		return internalErrorf("the approved plan read from the store does not match its digest")
	}
	if err := mkdirPrivate(p.work, p.private); err != nil {
		return transientError("creating the work dir", err)
	}
	tmp := p.planFile + ".tmp"
	if err := os.WriteFile(tmp, plain, 0o600); err != nil {
		return transientError("writing the approved plan", err)
	}
	if err := os.Rename(tmp, p.planFile); err != nil {
		return transientError("writing the approved plan", err)
	}
	s.book.runner(task.LevelInfo, "applying the approved plan %s, read from the store", short(digest))
	return nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

// staleDiagnostics reports whether Terraform refused a saved plan because
// the state changed since it was made: "Saved plan is stale" (a newer
// serial) or "Saved plan does not match the given state" (another lineage).
func staleDiagnostics(diags []task.Diagnostic) bool {
	for _, d := range diags {
		if d.Severity == "error" && (strings.Contains(d.Summary, "Saved plan is stale") ||
			strings.Contains(d.Summary, "Saved plan does not match the given state")) {
			return true
		}
	}
	return false
}
