package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
)

// newCredentialSet returns a set of org named name whose sealed values
// (opaque to the store) and scopes differ by tag.
func newCredentialSet(org, name, tag string) store.CredentialSet {
	return store.CredentialSet{
		Org: org, Name: name, Description: "set " + tag + " \u00e9",
		SealedEnv: "sealed-env-" + tag, EnvNames: []string{"TF_VAR_b_" + tag, "AWS_" + tag},
		SealedVariables: "sealed-vars-" + tag, VariableNames: []string{"z_" + tag, "a_" + tag},
		Agents: []string{"agent-" + tag, "bot-*"}, Workspaces: []string{"prod-*"}, Runners: []string{},
		Attach: true,
		OIDC: &store.CredentialOIDC{Provider: "aws", Audience: "sts.amazonaws.com",
			AWSRoleARN: "arn:aws:iam::123456789012:role/" + tag},
		CreatedBy: "key-" + tag, UpdatedBy: "key-" + tag,
	}
}

// mustPutCredentialSet puts set, fails the test unless created is as
// wanted, and returns what the put returned.
func mustPutCredentialSet(t testing.TB, s store.Store, set store.CredentialSet, keep store.CredentialKeep, created bool) store.CredentialSet {
	t.Helper()
	got, c, err := s.PutCredentialSet(context.Background(), set, keep)
	if err != nil {
		t.Fatalf("PutCredentialSet(%s): %v", set.Name, err)
	}
	if c != created {
		t.Fatalf("PutCredentialSet(%s) created = %v, want %v", set.Name, c, created)
	}
	return got
}

// diffCredentialSet lists the fields in which got differs from want:
// names sorted, nil lists empty, times in UTC at microsecond precision
// (compared when want has them).
func diffCredentialSet(got, want store.CredentialSet) []string {
	norm := store.ApplyCredentialPut(store.CredentialSet{}, false, want, store.CredentialKeep{})
	var d []string
	for _, f := range []struct {
		field string
		g, w  any
	}{
		{"Org", got.Org, norm.Org}, {"Name", got.Name, norm.Name}, {"Description", got.Description, norm.Description},
		{"SealedEnv", got.SealedEnv, norm.SealedEnv}, {"EnvNames", got.EnvNames, norm.EnvNames},
		{"SealedVariables", got.SealedVariables, norm.SealedVariables}, {"VariableNames", got.VariableNames, norm.VariableNames},
		{"Agents", got.Agents, norm.Agents}, {"Workspaces", got.Workspaces, norm.Workspaces}, {"Runners", got.Runners, norm.Runners},
		{"Attach", got.Attach, norm.Attach}, {"OIDC", got.OIDC, norm.OIDC},
		{"CreatedBy", got.CreatedBy, norm.CreatedBy}, {"UpdatedBy", got.UpdatedBy, norm.UpdatedBy},
	} {
		if !reflect.DeepEqual(f.g, f.w) {
			d = append(d, fmt.Sprintf("%s: got %s, want %s", f.field, jsonString(f.g), jsonString(f.w)))
		}
	}
	for _, tm := range []struct {
		field string
		g, w  time.Time
	}{{"CreatedAt", got.CreatedAt, want.CreatedAt}, {"UpdatedAt", got.UpdatedAt, want.UpdatedAt}} {
		if tm.g.IsZero() || tm.g.Location() != time.UTC || !tm.g.Equal(us(tm.g)) {
			d = append(d, fmt.Sprintf("%s: got %v, want a time in UTC at microsecond precision", tm.field, tm.g))
		}
		if !tm.w.IsZero() && !tm.g.Equal(tm.w) {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", tm.field, tm.g, tm.w))
		}
	}
	return d
}

// expectCredentialSet fails the test unless (org, name) is stored as want.
func expectCredentialSet(t testing.TB, s store.Store, want store.CredentialSet) {
	t.Helper()
	got, err := s.GetCredentialSet(context.Background(), want.Org, want.Name)
	if err != nil {
		t.Fatalf("GetCredentialSet(%s): %v", want.Name, err)
	}
	if d := diffCredentialSet(got, want); len(d) > 0 {
		t.Errorf("credential set %s differs: %v", want.Name, d)
	}
}

func (h *harness) testCredentialSetsCRUD(t *testing.T) {
	s := h.open(t)
	ctx := context.Background()
	org := h.name("org")

	// A new set round-trips, names sorted, lists never nil.
	first := newCredentialSet(org, "aws-prod", "one")
	got := mustPutCredentialSet(t, s, first, store.CredentialKeep{}, true)
	if d := diffCredentialSet(got, first); len(d) > 0 {
		t.Fatalf("put returned %v", d)
	}
	if !got.CreatedAt.Equal(got.UpdatedAt) {
		t.Errorf("a new set: CreatedAt %v, UpdatedAt %v", got.CreatedAt, got.UpdatedAt)
	}
	first.CreatedAt, first.UpdatedAt = got.CreatedAt, got.UpdatedAt
	expectCredentialSet(t, s, first)
	bare := store.CredentialSet{Org: org, Name: "bare", CreatedBy: "k", UpdatedBy: "k"}
	mustPutCredentialSet(t, s, bare, store.CredentialKeep{}, true)
	expectCredentialSet(t, s, bare)

	// A put replaces it; who created it and when stays.
	time.Sleep(2 * time.Millisecond)
	second := newCredentialSet(org, "aws-prod", "two")
	second.OIDC, second.Attach = nil, false
	got = mustPutCredentialSet(t, s, second, store.CredentialKeep{}, false)
	second.CreatedBy, second.CreatedAt = first.CreatedBy, first.CreatedAt
	if d := diffCredentialSet(got, second); len(d) > 0 || !got.UpdatedAt.After(first.UpdatedAt) {
		t.Fatalf("replacing put returned %v (updated %v after %v)", d, got.UpdatedAt, first.UpdatedAt)
	}
	second.UpdatedAt = got.UpdatedAt
	expectCredentialSet(t, s, second)

	// A put that keeps values keeps each it names, and replaces the rest.
	third := newCredentialSet(org, "aws-prod", "three")
	third.SealedEnv, third.EnvNames = "", nil
	got = mustPutCredentialSet(t, s, third, store.CredentialKeep{Env: true}, false)
	third.SealedEnv, third.EnvNames = second.SealedEnv, second.EnvNames
	third.CreatedBy, third.CreatedAt = first.CreatedBy, first.CreatedAt
	if d := diffCredentialSet(got, third); len(d) > 0 {
		t.Fatalf("put keeping env returned %v", d)
	}
	expectCredentialSet(t, s, third)
	fourth := third
	fourth.SealedEnv, fourth.EnvNames, fourth.SealedVariables, fourth.VariableNames = "", []string{}, "", []string{}
	mustPutCredentialSet(t, s, fourth, store.CredentialKeep{}, false)
	expectCredentialSet(t, s, fourth)
	// Keeping the values of a new set keeps none.
	fresh := newCredentialSet(org, "fresh", "five")
	got = mustPutCredentialSet(t, s, fresh, store.CredentialKeep{Env: true, Variables: true}, true)
	if got.SealedEnv != "" || got.SealedVariables != "" || len(got.EnvNames) != 0 || len(got.VariableNames) != 0 {
		t.Errorf("a new set kept values it never had: %+v", got)
	}

	// Lists sort names bytewise.
	list, err := s.ListCredentialSets(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list {
		names = append(names, c.Name)
	}
	if want := []string{"aws-prod", "bare", "fresh"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("ListCredentialSets = %v, want %v", names, want)
	}
	if d := diffCredentialSet(list[0], fourth); len(d) > 0 {
		t.Errorf("listed set differs: %v", d)
	}

	// Delete.
	if err := s.DeleteCredentialSet(ctx, org, "bare"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCredentialSet(ctx, org, "bare"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	if _, err := s.GetCredentialSet(ctx, org, "bare"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get of a deleted set: %v, want ErrNotFound", err)
	}
	if list, _ := s.ListCredentialSets(ctx, h.name("org")); list == nil || len(list) != 0 {
		t.Errorf("an org without sets lists %v, want an empty list", list)
	}
}

func (h *harness) testCredentialSetsOrgIsolation(t *testing.T) {
	s := h.open(t)
	ctx := context.Background()
	orgA, orgB := h.name("org"), h.name("org")
	a := mustPutCredentialSet(t, s, newCredentialSet(orgA, "shared", "a"), store.CredentialKeep{}, true)
	if _, err := s.GetCredentialSet(ctx, orgB, "shared"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("org B reads org A's set: %v", err)
	}
	if list, err := s.ListCredentialSets(ctx, orgB); err != nil || len(list) != 0 {
		t.Errorf("org B lists %v %v", list, err)
	}
	if err := s.DeleteCredentialSet(ctx, orgB, "shared"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("org B deletes org A's set: %v", err)
	}
	// Org B's set of the same name is its own: it keeps nothing of A's.
	b := mustPutCredentialSet(t, s, store.CredentialSet{Org: orgB, Name: "shared", CreatedBy: "kb", UpdatedBy: "kb"},
		store.CredentialKeep{Env: true, Variables: true}, true)
	if b.SealedEnv != "" || b.SealedVariables != "" {
		t.Errorf("org B's new set kept org A's values: %+v", b)
	}
	if err := s.DeleteCredentialSet(ctx, orgB, "shared"); err != nil {
		t.Fatal(err)
	}
	expectCredentialSet(t, s, a)
}

func (h *harness) testCredentialSetsValidation(t *testing.T) {
	s := h.open(t)
	for _, c := range []store.CredentialSet{{Name: "n"}, {Org: h.name("org")}} {
		if _, _, err := s.PutCredentialSet(context.Background(), c, store.CredentialKeep{}); err == nil {
			t.Errorf("PutCredentialSet(%+v) succeeded without org or name", c)
		}
	}
}

// testCredentialSetsConcurrentPuts: puts that keep the values, racing one
// that replaces them, never write back the values they read before it.
func (h *harness) testCredentialSetsConcurrentPuts(t *testing.T) {
	s := h.open(t)
	org := h.name("org")
	for round := range 4 {
		name := fmt.Sprintf("racy-%d", round)
		mustPutCredentialSet(t, s, newCredentialSet(org, name, "old"), store.CredentialKeep{}, true)
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 9)
		for i := range 9 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				set, keep := newCredentialSet(org, name, fmt.Sprintf("scopes-%d", i)), store.CredentialKeep{Env: true, Variables: true}
				if i == 4 {
					set, keep = newCredentialSet(org, name, "new"), store.CredentialKeep{}
				}
				if _, _, err := s.PutCredentialSet(context.Background(), set, keep); err != nil {
					errs <- err
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, err := s.GetCredentialSet(context.Background(), org, name)
		if err != nil {
			t.Fatal(err)
		}
		if got.SealedEnv != "sealed-env-new" || got.SealedVariables != "sealed-vars-new" {
			t.Fatalf("round %d: a put that kept values wrote back older ones: %q %q", round, got.SealedEnv, got.SealedVariables)
		}
	}
}

// testCredentialDelivery: what a step receives, through LocalCredentials
// (and DeliverCredentials, which the runner API answers with).
func (h *harness) testCredentialDelivery(t *testing.T) {
	s := h.open(t)
	ctx := context.Background()
	org, other := h.name("org"), h.name("org")
	id := h.name("task")
	tk := pendingTask(id, org, baseTime)
	tk.AgentID, tk.RunnerID = "bot-1", "runner-1"
	mustCreate(t, s, tk)
	open := newCredentialSet(org, "open", "x")
	open.Agents, open.Workspaces, open.Runners = nil, nil, nil
	mustPutCredentialSet(t, s, open, store.CredentialKeep{}, true)
	scoped := newCredentialSet(org, "scoped", "y") // agents agent-y, bot-*; workspaces prod-*
	mustPutCredentialSet(t, s, scoped, store.CredentialKeep{}, true)
	mustPutCredentialSet(t, s, newCredentialSet(other, "elsewhere", "z"), store.CredentialKeep{}, true)
	src := store.LocalCredentials{Store: s}
	req := store.CredentialRequest{Org: org, RunnerID: "runner-1", TaskID: id, Workspace: "prod-eu", Sets: []string{"scoped", "open"}}

	got, err := src.TaskCredentials(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.CredentialDelivery{
		{Name: "scoped", SealedEnv: scoped.SealedEnv, SealedVariables: scoped.SealedVariables, OIDC: scoped.OIDC},
		{Name: "open", SealedEnv: open.SealedEnv, SealedVariables: open.SealedVariables, OIDC: open.OIDC},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("delivered %s, want %s", jsonString(got), jsonString(want))
	}

	refused := func(what string, r store.CredentialRequest, set, scope, value string) {
		t.Helper()
		_, err := src.TaskCredentials(ctx, r)
		var re *store.CredentialRefusedError
		if !errors.As(err, &re) || re.Set != set || re.Scope != scope || re.Value != value {
			t.Errorf("%s: %v, want the refusal of %s (%q %q)", what, err, set, scope, value)
		}
	}
	bad := req
	bad.Workspace = "staging"
	refused("another workspace", bad, "scoped", store.ScopeWorkspaces, "staging")
	bad = req
	bad.Sets = []string{"open", "elsewhere"}
	refused("another org's set", bad, "elsewhere", "", "")
	// A set whose scopes changed after the task was created refuses it.
	scoped.Runners = []string{"runner-2*"}
	mustPutCredentialSet(t, s, scoped, store.CredentialKeep{Env: true, Variables: true}, false)
	refused("the set's runners changed", req, "scoped", store.ScopeRunners, "runner-1")
	scoped.Runners, scoped.Agents = nil, []string{"agent-*"}
	mustPutCredentialSet(t, s, scoped, store.CredentialKeep{Env: true, Variables: true}, false)
	refused("the set's agents changed", req, "scoped", store.ScopeAgents, "bot-1")

	// The task must be the runner's, of its org.
	for what, r := range map[string]store.CredentialRequest{
		"another runner": {Org: org, RunnerID: "runner-2", TaskID: id, Workspace: "prod-eu", Sets: []string{"open"}},
		"another org":    {Org: other, RunnerID: "runner-1", TaskID: id, Workspace: "prod-eu", Sets: []string{"elsewhere"}},
		"no such task":   {Org: org, RunnerID: "runner-1", TaskID: h.name("task"), Workspace: "prod-eu", Sets: []string{"open"}},
	} {
		if _, err := src.TaskCredentials(ctx, r); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", what, err)
		}
	}
	if got, err := src.TaskCredentials(ctx, store.CredentialRequest{Org: org, RunnerID: "runner-1", TaskID: id}); err != nil || len(got) != 0 {
		t.Errorf("no sets: %v %v", got, err)
	}
}
