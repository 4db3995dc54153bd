package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// regoModule returns a small Rego module that differs by tag.
func regoModule(tag string) string {
	return "package terratask.policy\n\nimport rego.v1\n\n# " + tag + "\ndeny contains msg if {\n\tinput.terratask.task.name == \"" + tag + "\"\n\tmsg := \"no " + tag + " \u00e9\"\n}\n"
}

// newPolicy returns a policy of org named name whose module is
// regoModule(tag), with its SHA-256.
func newPolicy(org, name, tag string) store.Policy {
	rego := regoModule(tag)
	sum := sha256.Sum256([]byte(rego))
	return store.Policy{Org: org, Name: name, Rego: rego, Description: "rule " + tag, SHA256: hex.EncodeToString(sum[:]),
		Source: "api", CreatedBy: "key-" + tag}
}

// mustPutPolicy puts p, fails the test unless changed is as wanted, and
// returns what PutPolicy returned.
func mustPutPolicy(t testing.TB, s store.Store, p store.Policy, changed bool) store.Policy {
	t.Helper()
	got, ch, err := s.PutPolicy(context.Background(), p)
	if err != nil {
		t.Fatalf("PutPolicy(%s %s): %v", p.Name, p.Description, err)
	}
	if ch != changed {
		t.Fatalf("PutPolicy(%s %s) changed = %v, want %v", p.Name, p.Description, ch, changed)
	}
	return got
}

// diffPolicy lists the fields in which got differs from want; CreatedAt
// is compared when want has one.
func diffPolicy(got, want store.Policy) []string {
	var d []string
	for _, f := range []struct {
		field string
		g, w  any
	}{
		{"Org", got.Org, want.Org}, {"Name", got.Name, want.Name}, {"Version", got.Version, want.Version},
		{"Rego", got.Rego, want.Rego}, {"Description", got.Description, want.Description},
		{"SHA256", got.SHA256, want.SHA256}, {"Source", got.Source, want.Source},
		{"Deleted", got.Deleted, want.Deleted}, {"CreatedBy", got.CreatedBy, want.CreatedBy},
	} {
		if f.g != f.w {
			d = append(d, fmt.Sprintf("%s: got %q, want %q", f.field, fmt.Sprint(f.g), fmt.Sprint(f.w)))
		}
	}
	if got.CreatedAt.IsZero() || got.CreatedAt.Location() != time.UTC {
		d = append(d, fmt.Sprintf("CreatedAt: got %v, want a time in UTC", got.CreatedAt))
	}
	if !want.CreatedAt.IsZero() && !got.CreatedAt.Equal(want.CreatedAt) {
		d = append(d, fmt.Sprintf("CreatedAt: got %v, want %v", got.CreatedAt, want.CreatedAt))
	}
	return d
}

// expectPolicy fails the test unless got is want (see diffPolicy).
func expectPolicy(t testing.TB, what string, got, want store.Policy) {
	t.Helper()
	if d := diffPolicy(got, want); len(d) > 0 {
		t.Errorf("%s differs: %v", what, d)
	}
}

// expectGetPolicy fails the test unless GetPolicy returns want.
func expectGetPolicy(t testing.TB, s store.Store, org, name string, version int, want store.Policy) {
	t.Helper()
	got, err := s.GetPolicy(context.Background(), org, name, version)
	if err != nil {
		t.Fatalf("GetPolicy(%s, %d): %v", name, version, err)
	}
	expectPolicy(t, fmt.Sprintf("GetPolicy(%s, %d)", name, version), got, want)
}

// expectPolicyNotFound fails the test unless GetPolicy is ErrNotFound.
func expectPolicyNotFound(t testing.TB, s store.Store, org, name string, version int) {
	t.Helper()
	if p, err := s.GetPolicy(context.Background(), org, name, version); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPolicy(%s, %s, %d) = version %d, %v; want ErrNotFound", org, name, version, p.Version, err)
	}
}

// listedPolicies returns "name@version" of ListPolicies(org), failing the
// test unless every listed policy has its Rego.
func listedPolicies(t testing.TB, s store.Store, org string) []string {
	t.Helper()
	ps, err := s.ListPolicies(context.Background(), org)
	if err != nil {
		t.Fatalf("ListPolicies(%s): %v", org, err)
	}
	out := []string{}
	for _, p := range ps {
		if p.Rego == "" || p.Deleted || p.Org != org {
			t.Errorf("ListPolicies(%s) lists %+v", org, p)
		}
		out = append(out, fmt.Sprintf("%s@%d", p.Name, p.Version))
	}
	return out
}

// policyVersions returns the versions PolicyVersions lists, failing the
// test if one has Rego.
func policyVersions(t testing.TB, s store.Store, org, name string) []store.Policy {
	t.Helper()
	vs, err := s.PolicyVersions(context.Background(), org, name)
	if err != nil {
		t.Fatalf("PolicyVersions(%s): %v", name, err)
	}
	for _, v := range vs {
		if v.Rego != "" {
			t.Errorf("PolicyVersions(%s) version %d has Rego", name, v.Version)
		}
	}
	return vs
}

func (h *harness) testPolicyVersions(t *testing.T) {
	s := h.open(t)
	ctx := context.Background()
	org, name := h.name("org"), "require-tags"
	expectPolicyNotFound(t, s, org, name, 0)
	expectPolicyNotFound(t, s, org, name, 1)
	if _, err := s.PolicyVersions(ctx, org, name); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("PolicyVersions before any: %v, want ErrNotFound", err)
	}
	if got := listedPolicies(t, s, org); len(got) != 0 {
		t.Fatalf("ListPolicies before any = %v", got)
	}

	before := us(time.Now())
	p1 := newPolicy(org, name, "one")
	p1.Version, p1.CreatedAt = 99, baseTime // assigned by the store
	v1 := mustPutPolicy(t, s, p1, true)
	if v1.CreatedAt.Before(before) || v1.CreatedAt.After(time.Now()) {
		t.Errorf("CreatedAt %v, want between %v and now", v1.CreatedAt, before)
	}
	want1 := p1
	want1.Version, want1.CreatedAt = 1, time.Time{}
	expectPolicy(t, "first put", v1, want1)
	expectGetPolicy(t, s, org, name, 0, v1)
	expectGetPolicy(t, s, org, name, 1, v1)

	// The same content again writes nothing, whoever puts it, and returns
	// the current version whole.
	same := p1
	same.CreatedBy = "someone-else"
	expectPolicy(t, "unchanged put", mustPutPolicy(t, s, same, false), v1)

	// Each of SHA256, Description and Source is a change.
	p2 := p1
	p2.Description = "rule one, described better"
	v2 := mustPutPolicy(t, s, p2, true)
	p3 := p2
	p3.Source = "dir:/etc/terratask/policies"
	v3 := mustPutPolicy(t, s, p3, true)
	p4 := newPolicy(org, name, "four")
	p4.Description, p4.Source = p3.Description, p3.Source
	v4 := mustPutPolicy(t, s, p4, true)
	if got := []int{v1.Version, v2.Version, v3.Version, v4.Version}; !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Fatalf("versions %v, want 1 to 4", got)
	}
	if v4.CreatedAt.Before(v1.CreatedAt) {
		t.Errorf("version 4 created at %v, before version 1 (%v)", v4.CreatedAt, v1.CreatedAt)
	}
	expectGetPolicy(t, s, org, name, 0, v4)
	expectGetPolicy(t, s, org, name, 1, v1)
	expectGetPolicy(t, s, org, name, 3, v3)
	expectPolicyNotFound(t, s, org, name, 5)
	expectPolicyNotFound(t, s, org, name, -1)

	// Versions come newest first, without Rego.
	vs := policyVersions(t, s, org, name)
	if len(vs) != 4 {
		t.Fatalf("PolicyVersions = %d versions, want 4", len(vs))
	}
	for i, want := range []store.Policy{v4, v3, v2, v1} {
		want.Rego = ""
		expectPolicy(t, fmt.Sprintf("PolicyVersions[%d]", i), vs[i], want)
	}

	// Lists hold each name's latest version, names sorted bytewise.
	for _, n := range []string{"beta", "Zeta", "alpha"} {
		mustPutPolicy(t, s, newPolicy(org, n, n), true)
	}
	mustPutPolicy(t, s, newPolicy(org, "beta", "beta 2"), true)
	if got, want := listedPolicies(t, s, org), []string{"Zeta@1", "alpha@1", "beta@2", name + "@4"}; !slices.Equal(got, want) {
		t.Errorf("ListPolicies = %v, want %v", got, want)
	}
	ps, err := s.ListPolicies(ctx, org)
	if err != nil || len(ps) != 4 {
		t.Fatalf("ListPolicies = %d policies, %v", len(ps), err)
	}
	expectPolicy(t, "listed latest version", ps[3], v4)
}

func (h *harness) testPolicyDelete(t *testing.T) {
	s := h.open(t)
	ctx := context.Background()
	org, name := h.name("org"), "no-public-buckets"
	if _, err := s.DeletePolicy(ctx, org, name, "key-d"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeletePolicy of a policy that never existed: %v, want ErrNotFound", err)
	}
	v1 := mustPutPolicy(t, s, newPolicy(org, name, "one"), true)
	p2 := newPolicy(org, name, "two")
	p2.Source = "dir:/policies"
	v2 := mustPutPolicy(t, s, p2, true)
	other := mustPutPolicy(t, s, newPolicy(org, "other", "other"), true)

	v3, err := s.DeletePolicy(ctx, org, name, "key-d")
	if err != nil {
		t.Fatalf("DeletePolicy: %v", err)
	}
	expectPolicy(t, "deleted version", v3, store.Policy{Org: org, Name: name, Version: 3, Source: p2.Source, Deleted: true, CreatedBy: "key-d"})

	// Gone from the latest and from lists; its older versions stay, and
	// the deletion's own version is no policy.
	expectPolicyNotFound(t, s, org, name, 0)
	expectPolicyNotFound(t, s, org, name, 3)
	expectGetPolicy(t, s, org, name, 2, v2)
	expectGetPolicy(t, s, org, name, 1, v1)
	if got, want := listedPolicies(t, s, org), []string{"other@1"}; !slices.Equal(got, want) {
		t.Errorf("ListPolicies after delete = %v, want %v", got, want)
	}
	vs := policyVersions(t, s, org, name)
	if len(vs) != 3 {
		t.Fatalf("PolicyVersions after delete = %d versions, want 3", len(vs))
	}
	expectPolicy(t, "PolicyVersions[0]", vs[0], v3)
	if vs[1].Version != 2 || vs[1].Deleted || vs[2].Version != 1 {
		t.Errorf("PolicyVersions after delete = %+v", vs)
	}
	if _, err := s.DeletePolicy(ctx, org, name, "key-d"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeletePolicy of a deleted policy: %v, want ErrNotFound", err)
	}
	if got := policyVersions(t, s, org, name); len(got) != 3 {
		t.Errorf("a refused delete wrote a version: %d versions", len(got))
	}

	// The next put continues the numbering, even with the content of the
	// version before the deletion.
	v4 := mustPutPolicy(t, s, p2, true)
	if v4.Version != 4 || v4.Deleted || v4.Rego != p2.Rego {
		t.Fatalf("put after delete = %+v, want version 4 of the content", v4)
	}
	expectGetPolicy(t, s, org, name, 0, v4)
	if got, want := listedPolicies(t, s, org), []string{name + "@4", "other@1"}; !slices.Equal(got, want) {
		t.Errorf("ListPolicies after put = %v, want %v", got, want)
	}

	// A put of a deleted version deletes too, without a SHA-256.
	v5 := mustPutPolicy(t, s, store.Policy{Org: org, Name: name, Source: "dir:/policies", Deleted: true, CreatedBy: "policy-dir"}, true)
	if v5.Version != 5 || !v5.Deleted {
		t.Fatalf("put of a deleted version = %+v", v5)
	}
	expectPolicyNotFound(t, s, org, name, 0)
	expectGetPolicy(t, s, org, "other", 0, other)
}

func (h *harness) testPolicyOrgIsolation(t *testing.T) {
	s := h.open(t)
	ctx := context.Background()
	orgA, orgB, name := h.name("org"), h.name("org"), "shared-name"
	a1 := mustPutPolicy(t, s, newPolicy(orgA, name, "a1"), true)
	a2 := mustPutPolicy(t, s, newPolicy(orgA, name, "a2"), true)

	// Org B sees none of org A's.
	if got := listedPolicies(t, s, orgB); len(got) != 0 {
		t.Errorf("ListPolicies of org B = %v", got)
	}
	expectPolicyNotFound(t, s, orgB, name, 0)
	expectPolicyNotFound(t, s, orgB, name, 1)
	if _, err := s.PolicyVersions(ctx, orgB, name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PolicyVersions of org B: %v, want ErrNotFound", err)
	}
	if _, err := s.DeletePolicy(ctx, orgB, name, "key-b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeletePolicy of org B: %v, want ErrNotFound", err)
	}

	// Each org numbers its own versions, and an org's unchanged put
	// compares with its own latest only.
	b1 := mustPutPolicy(t, s, newPolicy(orgB, name, "a2"), true)
	if b1.Version != 1 || b1.Org != orgB {
		t.Fatalf("org B's first put = %+v, want its version 1", b1)
	}
	if _, err := s.DeletePolicy(ctx, orgB, name, "key-b"); err != nil {
		t.Fatalf("DeletePolicy of org B's: %v", err)
	}
	expectGetPolicy(t, s, orgA, name, 0, a2)
	expectGetPolicy(t, s, orgA, name, 1, a1)
	if got := policyVersions(t, s, orgA, name); len(got) != 2 {
		t.Errorf("org A has %d versions, want 2", len(got))
	}
	if got, want := listedPolicies(t, s, orgA), []string{name + "@2"}; !slices.Equal(got, want) {
		t.Errorf("ListPolicies of org A = %v, want %v", got, want)
	}
}

func (h *harness) testPolicyValidation(t *testing.T) {
	s := h.open(t)
	ctx := context.Background()
	org := h.name("org")
	valid := newPolicy(org, "p", "p")
	for what, p := range map[string]store.Policy{
		"no org":    {Name: valid.Name, Rego: valid.Rego, SHA256: valid.SHA256},
		"no name":   {Org: org, Rego: valid.Rego, SHA256: valid.SHA256},
		"no sha256": {Org: org, Name: valid.Name, Rego: valid.Rego},
	} {
		if _, _, err := s.PutPolicy(ctx, p); err == nil {
			t.Errorf("PutPolicy with %s succeeded", what)
		}
	}
	if _, err := s.DeletePolicy(ctx, "", "p", "k"); err == nil {
		t.Error("DeletePolicy without an org succeeded")
	}
	if got := listedPolicies(t, s, org); len(got) != 0 {
		t.Errorf("refused puts stored %v", got)
	}
}

func (h *harness) testPolicyConcurrentPuts(t *testing.T) {
	s := h.open(t)
	ctx := context.Background()
	org := h.name("org")
	const n = 8

	// Puts of different content to one name at once get versions 1 to n.
	type put struct {
		p       store.Policy
		changed bool
		err     error
	}
	race := func(name string, tag func(i int) string) []put {
		start := make(chan struct{})
		out := make([]put, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				out[i].p, out[i].changed, out[i].err = s.PutPolicy(ctx, newPolicy(org, name, tag(i)))
			}()
		}
		close(start)
		wg.Wait()
		for i, r := range out {
			if r.err != nil {
				t.Fatalf("%s: put %d: %v", name, i, r.err)
			}
		}
		return out
	}

	puts := race("racy", func(i int) string { return fmt.Sprintf("racer %d", i) })
	var versions []int
	bySHA := map[string]int{}
	for _, r := range puts {
		if !r.changed {
			t.Errorf("a put of new content reported no change: %+v", r.p)
		}
		versions = append(versions, r.p.Version)
		bySHA[r.p.SHA256] = r.p.Version
	}
	slices.Sort(versions)
	if want := []int{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(versions, want) {
		t.Fatalf("concurrent puts got versions %v, want %v", versions, want)
	}
	vs := policyVersions(t, s, org, "racy")
	if len(vs) != n {
		t.Fatalf("PolicyVersions = %d versions, want %d", len(vs), n)
	}
	for i, v := range vs {
		if v.Version != n-i || bySHA[v.SHA256] != v.Version {
			t.Errorf("PolicyVersions[%d] = version %d of %s, want version %d as put", i, v.Version, v.SHA256, n-i)
		}
	}
	latest, err := s.GetPolicy(ctx, org, "racy", 0)
	if err != nil || latest.Version != n {
		t.Fatalf("latest = version %d, %v; want %d", latest.Version, err, n)
	}

	// Puts of the same content at once write it once.
	puts = race("same", func(int) string { return "same" })
	changed := 0
	for _, r := range puts {
		if r.changed {
			changed++
		}
		if r.p.Version != 1 || r.p.Rego != regoModule("same") {
			t.Errorf("identical concurrent put returned %+v, want version 1", r.p)
		}
	}
	if changed != 1 {
		t.Errorf("%d of %d identical concurrent puts wrote a version, want 1", changed, n)
	}
	if got := policyVersions(t, s, org, "same"); len(got) != 1 {
		t.Errorf("identical concurrent puts left %d versions, want 1", len(got))
	}
}

func (h *harness) testPolicyTransitions(t *testing.T) {
	s := h.open(t)
	ctx := context.Background()
	org := h.name("org")
	tk := pendingTask(h.name("task"), org, baseTime)
	mustCreate(t, s, tk)
	expectTask(t, s, tk) // no check: nil

	refs := []task.PolicyRef{{Name: "require-tags", Version: 3, SHA256: "ab"}, {Name: "size", Version: 1, SHA256: "cd"}}
	pre := &task.PolicyCheck{Decision: task.PolicyAllow, Stage: task.PolicyPrePlan, Policies: refs,
		Results: []task.PolicyResult{{Policy: "size", Version: 1, Rule: task.RuleWarn, Message: "big \u00e9\u4e16"}}}
	want := tk
	want.Status, want.UpdatedAt, want.Policy = task.StatusRunning, baseTime.Add(time.Minute), pre
	mustApply(t, s, store.Transition{ID: tk.ID, Status: want.Status, UpdatedAt: want.UpdatedAt, Policy: pre})
	expectTask(t, s, want)
	if got := mustGet(t, s, org, tk.ID); got.Policy == nil || len(got.Policy.Policies) != 2 || got.Policy.Policies[0] != refs[0] {
		t.Fatalf("stored check = %+v", got.Policy)
	}

	// A transition without one keeps it.
	want.UpdatedAt, want.Progress = baseTime.Add(2*time.Minute), 40
	mustApply(t, s, store.Transition{ID: tk.ID, Progress: 40, UpdatedAt: want.UpdatedAt})
	expectTask(t, s, want)

	// The post_plan check replaces it whole.
	post := &task.PolicyCheck{Decision: task.PolicyRequireApproval, Stage: task.PolicyPostPlan, Policies: refs[:1],
		Results: []task.PolicyResult{{Policy: "require-tags", Version: 3, Rule: task.RuleRequireApproval, Message: "untagged"}}}
	want.Status, want.UpdatedAt, want.Policy = task.StatusWaitingApproval, baseTime.Add(3*time.Minute), post
	want.Approval = &task.ApprovalState{ExpiresAt: ptr(us(baseTime.Add(time.Hour)))}
	mustApply(t, s, store.Transition{ID: tk.ID, Status: want.Status, UpdatedAt: want.UpdatedAt, Policy: post, Approval: want.Approval})
	expectTask(t, s, want)

	// An older transition is ignored, check and all.
	mustApply(t, s, store.Transition{ID: tk.ID, UpdatedAt: baseTime.Add(150 * time.Second),
		Policy: &task.PolicyCheck{Decision: task.PolicyDeny, Stage: task.PolicyPostPlan}})
	expectTask(t, s, want)

	// RecordTransition (the workflow's path) records it as ApplyTransition does.
	failed := &task.PolicyCheck{Decision: task.PolicyError, Stage: task.PolicyPostPlan, Error: "rego_type_error: undefined ref"}
	want.Status, want.UpdatedAt, want.Policy = task.StatusFailed, baseTime.Add(4*time.Minute), failed
	if _, err := s.RecordTransition(ctx, store.TransitionRecord{Task: tk, Transition: store.Transition{
		ID: tk.ID, Status: want.Status, UpdatedAt: want.UpdatedAt, Policy: failed}}); err != nil {
		t.Fatalf("RecordTransition: %v", err)
	}
	expectTask(t, s, want)

	// Lists carry it too.
	tasks, _, err := s.ListTasks(ctx, store.TaskQuery{Org: org, Limit: 10})
	if err != nil || len(tasks) != 1 {
		t.Fatalf("ListTasks: %v %v", tasks, err)
	}
	if d := diffTask(tasks[0], want); len(d) > 0 {
		t.Fatalf("listed task differs: %v", d)
	}
}

func (h *harness) testPlanPolicyInput(t *testing.T) {
	s := h.open(t)
	ctx := context.Background()
	org, id := h.name("org"), h.name("task")
	if _, err := s.GetPlanPolicyInput(ctx, org, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetPlanPolicyInput before any: %v, want ErrNotFound", err)
	}
	// Sealed: not UTF-8, with NUL bytes.
	input := append([]byte{0, 0xff, 0xfe}, bytes.Repeat([]byte("{\"resource_changes\":[]}\x00"), 20_000)...)
	p := store.Plan{TaskID: id, Org: org, Summary: task.PlanSummary{Add: 1}, JSON: []byte(`{"a":1}`), Text: "plan", Digest: "d1",
		PolicyInput: input}
	if err := s.PutPlan(ctx, p); err != nil {
		t.Fatalf("PutPlan: %v", err)
	}

	// GetPlan leaves it out; GetPlanPolicyInput reads it with the rest.
	plain, err := s.GetPlan(ctx, org, id)
	if err != nil {
		t.Fatalf("GetPlan: %v", err)
	}
	if plain.PolicyInput != nil {
		t.Errorf("GetPlan read PolicyInput (%d bytes)", len(plain.PolicyInput))
	}
	got, err := s.GetPlanPolicyInput(ctx, org, id)
	if err != nil {
		t.Fatalf("GetPlanPolicyInput: %v", err)
	}
	if !bytes.Equal(got.PolicyInput, input) {
		t.Errorf("PolicyInput = %d bytes, want the %d put, byte for byte", len(got.PolicyInput), len(input))
	}
	got.PolicyInput = nil
	if got.TaskID != plain.TaskID || got.Org != plain.Org || got.Summary != plain.Summary || !bytes.Equal(got.JSON, plain.JSON) ||
		got.Text != plain.Text || got.Digest != plain.Digest || !got.CreatedAt.Equal(plain.CreatedAt) {
		t.Errorf("GetPlanPolicyInput = %+v, want GetPlan's %+v", got, plain)
	}

	// Another org never sees it.
	if _, err := s.GetPlanPolicyInput(ctx, h.name("org"), id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPlanPolicyInput of another org: %v, want ErrNotFound", err)
	}

	// A new plan without one replaces it: none.
	p.PolicyInput, p.Digest = nil, "d2"
	if err := s.PutPlan(ctx, p); err != nil {
		t.Fatalf("PutPlan again: %v", err)
	}
	if got, err = s.GetPlanPolicyInput(ctx, org, id); err != nil || got.Digest != "d2" || len(got.PolicyInput) != 0 {
		t.Fatalf("GetPlanPolicyInput after a plan without one = %d bytes, digest %s, %v", len(got.PolicyInput), got.Digest, err)
	}
}

// CheckPolicyUpgrade checks a store opened on a database that migration 10
// (policies) upgraded, in which task id of org and its plan were stored
// before it (a task without approval, a plan whose summary is {}): the
// task has no policy check and its plan no policy input, both can be
// written, and the org has no policies until one is put.
func CheckPolicyUpgrade(t *testing.T, s store.Store, org, id string) {
	t.Helper()
	ctx := t.Context()
	tk := mustGet(t, s, org, id)
	if tk.Policy != nil || tk.Approval != nil {
		t.Errorf("task stored before the upgrade: policy %+v, approval %+v; want none", tk.Policy, tk.Approval)
	}
	p, err := s.GetPlanPolicyInput(ctx, org, id)
	if err != nil || p.PolicyInput != nil || p.TaskID != id {
		t.Fatalf("plan stored before the upgrade: %+v, %v; want it without policy input", p, err)
	}
	if got := listedPolicies(t, s, org); len(got) != 0 {
		t.Errorf("policies after the upgrade: %v", got)
	}

	check := &task.PolicyCheck{Decision: task.PolicyAllow, Stage: task.PolicyPrePlan, Results: []task.PolicyResult{}}
	mustApply(t, s, store.Transition{ID: id, UpdatedAt: tk.UpdatedAt.Add(time.Second), Policy: check})
	if got := mustGet(t, s, org, id); got.Policy == nil || got.Policy.Decision != task.PolicyAllow {
		t.Errorf("policy check after the upgrade = %+v", got.Policy)
	}
	p.PolicyInput = []byte{0, 1, 2}
	if err := s.PutPlan(ctx, p); err != nil {
		t.Fatalf("PutPlan after the upgrade: %v", err)
	}
	if got, err := s.GetPlanPolicyInput(ctx, org, id); err != nil || !bytes.Equal(got.PolicyInput, p.PolicyInput) {
		t.Errorf("policy input after the upgrade = %v, %v", got.PolicyInput, err)
	}
	if v := mustPutPolicy(t, s, newPolicy(org, "first", "first"), true); v.Version != 1 {
		t.Errorf("first policy after the upgrade = version %d", v.Version)
	}
}
