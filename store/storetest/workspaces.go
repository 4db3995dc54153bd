package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// claim returns a claim of (org, ws) by agent for taskID at at.
func claim(org, ws, agent, taskID string, at time.Time) store.WorkspaceClaim {
	return store.WorkspaceClaim{Org: org, Name: ws, Agent: agent, TaskID: taskID, By: "key-of-" + agent, At: at}
}

// mustClaim claims or fails the test.
func mustClaim(t *testing.T, s store.Store, c store.WorkspaceClaim) store.Workspace {
	t.Helper()
	w, err := s.ClaimWorkspace(t.Context(), c)
	if err != nil {
		t.Fatalf("ClaimWorkspace(%s by %q): %v", c.Name, c.Agent, err)
	}
	return w
}

// mustGetWorkspace reads a workspace or fails the test.
func mustGetWorkspace(t *testing.T, s store.Store, org, ws string) store.Workspace {
	t.Helper()
	w, err := s.GetWorkspace(t.Context(), org, ws)
	if err != nil {
		t.Fatalf("GetWorkspace(%s): %v", ws, err)
	}
	return w
}

// testWorkspaceClaims: the first claim creates the workspace and makes its
// agent the owner; another agent's claim is refused and changes nothing;
// the owner's later claims move the latest task forward, never back; a
// claim without an agent is allowed everywhere and leaves a new workspace
// unowned, which the next agent's claim takes.
func (h *harness) testWorkspaceClaims(t *testing.T) {
	s := h.open(t)
	ctx := t.Context()
	org, ws := h.name("org"), h.name("ws")

	if _, err := s.GetWorkspace(ctx, org, ws); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetWorkspace of a new workspace: %v, want ErrNotFound", err)
	}
	t1 := h.name("task")
	w := mustClaim(t, s, claim(org, ws, "agent-a", t1, baseTime))
	if w.Org != org || w.Name != ws || !reflect.DeepEqual(w.Agents, []string{"agent-a"}) || w.CreatedBy != "key-of-agent-a" ||
		!w.CreatedAt.Equal(us(baseTime)) || w.LatestTaskID != t1 || !w.LatestTaskAt.Equal(us(baseTime)) {
		t.Fatalf("first claim: %+v", w)
	}
	got := mustGetWorkspace(t, s, org, ws)
	if !reflect.DeepEqual(got.Agents, []string{"agent-a"}) || got.LatestTaskID != t1 || got.LatestTaskStatus != "" ||
		got.State != nil || got.Lock != nil || got.CreatedAt.Location() != time.UTC || !got.UpdatedAt.Equal(us(baseTime)) {
		t.Fatalf("GetWorkspace after the first claim (task not indexed): %+v", got)
	}
	mustCreate(t, s, pendingTask(t1, org, baseTime))
	if got := mustGetWorkspace(t, s, org, ws); got.LatestTaskStatus != task.StatusPending {
		t.Fatalf("latest task status: %q, want pending", got.LatestTaskStatus)
	}

	// Another agent: refused, nothing changes.
	w, err := s.ClaimWorkspace(ctx, claim(org, ws, "agent-b", h.name("task"), baseTime.Add(time.Minute)))
	if !errors.Is(err, store.ErrNotGranted) || !reflect.DeepEqual(w.Agents, []string{"agent-a"}) {
		t.Fatalf("another agent's claim: %+v, %v; want ErrNotGranted with the owner", w, err)
	}
	if got := mustGetWorkspace(t, s, org, ws); got.LatestTaskID != t1 || !reflect.DeepEqual(got.Agents, []string{"agent-a"}) {
		t.Fatalf("a refused claim changed the workspace: %+v", got)
	}

	// The owner again: a later task is the latest, an earlier one is not.
	t2 := h.name("task")
	if w := mustClaim(t, s, claim(org, ws, "agent-a", t2, baseTime.Add(2*time.Minute))); w.LatestTaskID != t2 {
		t.Fatalf("later claim: %+v", w)
	}
	if w := mustClaim(t, s, claim(org, ws, "agent-a", h.name("task"), baseTime.Add(time.Minute))); w.LatestTaskID != t2 {
		t.Fatalf("an earlier task became the latest: %+v", w)
	}
	// A claim without a task (a key writing state) keeps the latest task.
	if w := mustClaim(t, s, claim(org, ws, "agent-a", "", baseTime.Add(time.Hour))); w.LatestTaskID != t2 {
		t.Fatalf("a claim without a task: %+v", w)
	}
	// No agent: allowed on an owned workspace, changes no agents.
	if w := mustClaim(t, s, claim(org, ws, "", h.name("task"), baseTime.Add(3*time.Minute))); !reflect.DeepEqual(w.Agents, []string{"agent-a"}) {
		t.Fatalf("a claim without an agent: %+v", w)
	}

	// A workspace first used without an agent is unowned; the next agent's
	// claim takes it.
	free := h.name("ws")
	if w := mustClaim(t, s, claim(org, free, "", "", baseTime)); len(w.Agents) != 0 || w.Agents == nil || w.LatestTaskID != "" {
		t.Fatalf("a claim without an agent of a new workspace: %+v", w)
	}
	if got := mustGetWorkspace(t, s, org, free); got.Agents == nil || len(got.Agents) != 0 || !got.LatestTaskAt.IsZero() {
		t.Fatalf("an unowned workspace: %+v", got)
	}
	if w := mustClaim(t, s, claim(org, free, "agent-c", h.name("task"), baseTime.Add(time.Second))); !reflect.DeepEqual(w.Agents, []string{"agent-c"}) ||
		w.UpdatedBy != "key-of-agent-c" || w.CreatedBy != "key-of-" {
		t.Fatalf("claiming an unowned workspace: %+v", w)
	}
	if _, err := s.ClaimWorkspace(ctx, claim(org, free, "agent-a", "", baseTime)); !errors.Is(err, store.ErrNotGranted) {
		t.Fatalf("after the claim, another agent: %v", err)
	}

	// The same name in another org is another workspace.
	other := h.name("org")
	if w := mustClaim(t, s, claim(other, ws, "agent-b", "", baseTime)); !reflect.DeepEqual(w.Agents, []string{"agent-b"}) {
		t.Fatalf("the same name in another org: %+v", w)
	}
	if _, err := s.ClaimWorkspace(ctx, store.WorkspaceClaim{Org: org}); err == nil {
		t.Fatal("a claim without a name: no error")
	}
}

// testWorkspaceAgents: SetWorkspaceAgents replaces the list (its first
// agent is the owner), creates a missing workspace, and an empty list makes
// it unowned.
func (h *harness) testWorkspaceAgents(t *testing.T) {
	s := h.open(t)
	ctx := t.Context()
	org, ws := h.name("org"), h.name("ws")
	mustClaim(t, s, claim(org, ws, "agent-a", "", baseTime))
	at := baseTime.Add(time.Hour)
	w, err := s.SetWorkspaceAgents(ctx, org, ws, []string{"agent-b", "agent-a"}, "admin", at)
	if err != nil || !reflect.DeepEqual(w.Agents, []string{"agent-b", "agent-a"}) || w.UpdatedBy != "admin" || !w.UpdatedAt.Equal(us(at)) ||
		w.CreatedBy != "key-of-agent-a" || !w.CreatedAt.Equal(us(baseTime)) {
		t.Fatalf("SetWorkspaceAgents: %+v, %v", w, err)
	}
	for _, agent := range []string{"agent-a", "agent-b"} {
		mustClaim(t, s, claim(org, ws, agent, h.name("task"), at))
	}
	if _, err := s.ClaimWorkspace(ctx, claim(org, ws, "agent-c", "", at)); !errors.Is(err, store.ErrNotGranted) {
		t.Fatalf("an agent not granted: %v", err)
	}
	// Revoked: refused.
	if _, err := s.SetWorkspaceAgents(ctx, org, ws, []string{"agent-b"}, "admin", at); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimWorkspace(ctx, claim(org, ws, "agent-a", "", at)); !errors.Is(err, store.ErrNotGranted) {
		t.Fatalf("a revoked agent: %v", err)
	}
	// Empty: unowned, and the next agent takes it.
	if w, err := s.SetWorkspaceAgents(ctx, org, ws, nil, "admin", at); err != nil || w.Agents == nil || len(w.Agents) != 0 {
		t.Fatalf("SetWorkspaceAgents(nil): %+v, %v", w, err)
	}
	if w := mustClaim(t, s, claim(org, ws, "agent-c", "", at)); !reflect.DeepEqual(w.Agents, []string{"agent-c"}) {
		t.Fatalf("claiming after the list was emptied: %+v", w)
	}
	// A workspace nobody used yet: created with the list.
	fresh := h.name("ws")
	w, err = s.SetWorkspaceAgents(ctx, org, fresh, []string{"agent-d"}, "operator", at)
	if err != nil || !reflect.DeepEqual(w.Agents, []string{"agent-d"}) || w.CreatedBy != "operator" || !w.CreatedAt.Equal(us(at)) || w.LatestTaskID != "" {
		t.Fatalf("SetWorkspaceAgents of a new workspace: %+v, %v", w, err)
	}
	if _, err := s.ClaimWorkspace(ctx, claim(org, fresh, "agent-a", "", at)); !errors.Is(err, store.ErrNotGranted) {
		t.Fatalf("a workspace reserved for another agent: %v", err)
	}
}

// testWorkspaceState: the read-only fields follow the workspace's state:
// its latest version (without data) and its lock.
func (h *harness) testWorkspaceState(t *testing.T) {
	s := h.open(t)
	ctx := t.Context()
	org, ws := h.name("org"), h.name("ws")
	mustClaim(t, s, claim(org, ws, "agent-a", "", baseTime))
	for i, doc := range []string{"a", "b"} {
		if _, err := s.PutState(ctx, stateVersion(org, ws, doc, int64(7+i)), ""); err != nil {
			t.Fatal(err)
		}
	}
	// Another workspace's state does not leak in.
	if _, err := s.PutState(ctx, stateVersion(org, h.name("ws"), "z", 99), ""); err != nil {
		t.Fatal(err)
	}
	w := mustGetWorkspace(t, s, org, ws)
	if w.State == nil || w.State.Version != 2 || w.State.Serial != 8 || w.State.Data != nil || w.State.MD5 != "md5-b" || w.Lock != nil {
		t.Fatalf("state of a workspace: %+v lock %+v", w.State, w.Lock)
	}
	l := store.StateLock{Org: org, Workspace: ws, ID: "L1", TaskID: "task-x", Fence: 2, Info: []byte(`{"ID":"L1","Who":"me@host"}`)}
	if err := s.LockState(ctx, l); err != nil {
		t.Fatal(err)
	}
	w = mustGetWorkspace(t, s, org, ws)
	if w.Lock == nil || w.Lock.ID != "L1" || w.Lock.TaskID != "task-x" || string(w.Lock.Info) != string(l.Info) || w.Lock.CreatedAt.IsZero() {
		t.Fatalf("lock of a workspace: %+v", w.Lock)
	}
	list, _, err := s.ListWorkspaces(ctx, store.WorkspaceQuery{Org: org, Limit: 10})
	if err != nil || len(list) != 1 || list[0].Lock == nil || list[0].State == nil || list[0].State.Serial != 8 {
		t.Fatalf("ListWorkspaces with state: %+v, %v", list, err)
	}
	if _, err := s.UnlockState(ctx, org, ws, "L1"); err != nil {
		t.Fatal(err)
	}
	if w := mustGetWorkspace(t, s, org, ws); w.Lock != nil {
		t.Fatalf("a released lock is still shown: %+v", w.Lock)
	}
}

// testWorkspaceList: lists are per org, by name bytewise, paged with a
// total, and filtered by agent.
func (h *harness) testWorkspaceList(t *testing.T) {
	s := h.open(t)
	ctx := t.Context()
	org := h.name("org")
	// Names that sort differently bytewise and by a locale.
	names := []string{"b", "B", "a-1", "a.1", "a_1", "Z", "ws.9", "ws-10"}
	owner := map[string]string{}
	for i, n := range names {
		agent := []string{"agent-a", "agent-b", ""}[i%3]
		owner[n] = agent
		mustClaim(t, s, claim(org, n, agent, "", baseTime.Add(time.Duration(i)*time.Second)))
	}
	if _, err := s.SetWorkspaceAgents(ctx, org, "Z", []string{"agent-b", "agent-a"}, "admin", baseTime); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, s, claim(h.name("org"), "a", "agent-a", "", baseTime)) // another org
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)

	all, total, err := s.ListWorkspaces(ctx, store.WorkspaceQuery{Org: org, Limit: 100})
	if err != nil || total != len(names) || len(all) != len(names) {
		t.Fatalf("ListWorkspaces: %d of %d, %v", len(all), total, err)
	}
	for i, w := range all {
		if w.Name != sorted[i] || w.Org != org {
			t.Fatalf("ListWorkspaces order: %d is %s, want %s (%v)", i, w.Name, sorted[i], sorted)
		}
	}
	var paged []string
	for off := 0; off < len(names)+3; off += 3 {
		page, total, err := s.ListWorkspaces(ctx, store.WorkspaceQuery{Org: org, Limit: 3, Offset: off})
		if err != nil || total != len(names) {
			t.Fatalf("page at %d: %d, %v", off, total, err)
		}
		for _, w := range page {
			paged = append(paged, w.Name)
		}
	}
	if !reflect.DeepEqual(paged, sorted) {
		t.Fatalf("pages %v, want %v", paged, sorted)
	}
	for _, agent := range []string{"agent-a", "agent-b", "agent-z"} {
		var want []string
		for _, n := range sorted {
			if owner[n] == agent || (n == "Z" && agent != "agent-z") {
				want = append(want, n)
			}
		}
		got, total, err := s.ListWorkspaces(ctx, store.WorkspaceQuery{Org: org, Agent: agent, Limit: 100})
		if err != nil || total != len(want) {
			t.Fatalf("agent %s: total %d, want %d, %v", agent, total, len(want), err)
		}
		var gotNames []string
		for _, w := range got {
			gotNames = append(gotNames, w.Name)
		}
		if fmt.Sprint(gotNames) != fmt.Sprint(want) {
			t.Fatalf("agent %s: %v, want %v", agent, gotNames, want)
		}
	}
	if none, total, err := s.ListWorkspaces(ctx, store.WorkspaceQuery{Org: h.name("org"), Limit: 10}); err != nil || total != 0 || none == nil || len(none) != 0 {
		t.Fatalf("an org without workspaces: %v, %d, %v", none, total, err)
	}
	if _, _, err := s.ListWorkspaces(ctx, store.WorkspaceQuery{Org: org}); err == nil {
		t.Fatal("ListWorkspaces without a limit: no error")
	}
}

// testWorkspaceClaimRace: agents that create first tasks on a new
// workspace at once never both own it: one agent wins, every claim of its
// agent succeeds and every other agent's is refused.
func (h *harness) testWorkspaceClaimRace(t *testing.T) {
	s := h.open(t)
	org := h.name("org")
	const (
		workspaces = 5
		agents     = 4
		perAgent   = 3
	)
	for range workspaces {
		ws := h.name("ws")
		var wg sync.WaitGroup
		type result struct {
			agent string
			w     store.Workspace
			err   error
		}
		results := make(chan result, agents*perAgent)
		start := make(chan struct{})
		for a := range agents {
			for i := range perAgent {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					agent := fmt.Sprint("agent-", a)
					w, err := s.ClaimWorkspace(t.Context(), claim(org, ws, agent, fmt.Sprintf("task-%d-%d", a, i), baseTime.Add(time.Duration(i)*time.Second)))
					results <- result{agent, w, err}
				}()
			}
		}
		close(start)
		wg.Wait()
		close(results)
		final := mustGetWorkspace(t, s, org, ws)
		if len(final.Agents) != 1 {
			t.Fatalf("%s: agents %v after the race, want one owner", ws, final.Agents)
		}
		owner, won := final.Agents[0], 0
		for r := range results {
			switch {
			case r.agent == owner && r.err == nil && reflect.DeepEqual(r.w.Agents, []string{owner}):
				won++
			case r.agent != owner && errors.Is(r.err, store.ErrNotGranted) && reflect.DeepEqual(r.w.Agents, []string{owner}):
			default:
				t.Fatalf("%s: claim of %s: %+v, %v (owner %s)", ws, r.agent, r.w, r.err, owner)
			}
		}
		if won != perAgent {
			t.Fatalf("%s: %d claims of the owner succeeded, want %d", ws, won, perAgent)
		}
	}
}

// Backfill rows: an implementation's upgrade test stores them with the
// schema before migration 8 (which added workspaces), opens the store and
// calls CheckBackfill.
var (
	// BackfillTasks are tasks (ID, org, agent).
	BackfillTasks = [][3]string{
		{"task-bf-a", "bf-org", "agent-a"}, {"task-bf-b", "bf-org", "agent-b"}, {"task-bf-none", "bf-org", ""},
	}
	// BackfillVersions are state versions (org, workspace, version, task
	// ID), version v created at BackfillTime plus v minutes.
	BackfillVersions = []BackfillVersion{
		// Written by b first, then a, a key and b again: b owns it, a is
		// granted.
		{"bf-org", "shared", 1, "task-bf-b"}, {"bf-org", "shared", 2, "task-bf-a"}, {"bf-org", "shared", 3, ""}, {"bf-org", "shared", 4, "task-bf-b"},
		// A task's own workspace (pruned: its first kept version is 3).
		{"bf-org", "task-bf-a", 3, "task-bf-a"},
		// Keys only, a task without an agent, a task the index lost: unowned.
		{"bf-org", "keys", 1, ""}, {"bf-org", "agentless", 1, "task-bf-none"}, {"bf-org", "lost", 1, "task-gone"},
		// Another org's workspace written by a task of bf-org: unowned.
		{"bf-other", "shared", 1, "task-bf-a"},
	}
	// BackfillLocks are locks (org, workspace, task ID) of workspaces
	// without versions, taken at BackfillTime.
	BackfillLocks = [][3]string{{"bf-org", "locked", "task-bf-a"}}
	// BackfillTime is when the backfill rows were written.
	BackfillTime = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
)

// BackfillVersion is a state version of the backfill rows.
type BackfillVersion struct {
	Org, Workspace string
	Version        int64
	TaskID         string
}

// CheckBackfill checks what migration 8 made of the backfill rows.
func CheckBackfill(t *testing.T, s store.Store) {
	t.Helper()
	for _, c := range []struct {
		org, ws string
		agents  []string
		created time.Time
	}{
		{"bf-org", "shared", []string{"agent-b", "agent-a"}, BackfillTime.Add(time.Minute)},
		{"bf-org", "task-bf-a", []string{"agent-a"}, BackfillTime.Add(3 * time.Minute)},
		{"bf-org", "keys", []string{}, BackfillTime.Add(time.Minute)},
		{"bf-org", "agentless", []string{}, BackfillTime.Add(time.Minute)},
		{"bf-org", "lost", []string{}, BackfillTime.Add(time.Minute)},
		{"bf-other", "shared", []string{}, BackfillTime.Add(time.Minute)},
		{"bf-org", "locked", []string{}, BackfillTime},
	} {
		w, err := s.GetWorkspace(t.Context(), c.org, c.ws)
		if err != nil {
			t.Fatalf("%s/%s after the upgrade: %v", c.org, c.ws, err)
		}
		if !reflect.DeepEqual(w.Agents, c.agents) || !w.CreatedAt.Equal(c.created) || w.LatestTaskID != "" {
			t.Errorf("%s/%s after the upgrade: agents %v created %v latest %q; want %v at %v", c.org, c.ws, w.Agents, w.CreatedAt, w.LatestTaskID, c.agents, c.created)
		}
	}
	if _, total, err := s.ListWorkspaces(t.Context(), store.WorkspaceQuery{Org: "bf-org", Limit: 100}); err != nil || total != 6 {
		t.Errorf("bf-org has %d workspaces after the upgrade, want 6: %v", total, err)
	}
	// The backfilled owner keeps its workspace; others are refused.
	if _, err := s.ClaimWorkspace(t.Context(), claim("bf-org", "shared", "agent-c", "", time.Now())); !errors.Is(err, store.ErrNotGranted) {
		t.Errorf("another agent's claim of a backfilled workspace: %v", err)
	}
	if w, err := s.ClaimWorkspace(t.Context(), claim("bf-org", "keys", "agent-c", "", time.Now())); err != nil || !reflect.DeepEqual(w.Agents, []string{"agent-c"}) {
		t.Errorf("claiming a backfilled unowned workspace: %+v, %v", w, err)
	}
}
