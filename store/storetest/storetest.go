// Package storetest is the behavioural test suite every store.Store
// implementation must pass, plus data generators and benchmarks shared by the
// implementations.
//
// An implementation's test calls Run with a function that opens a store and
// registers its Close with t.Cleanup:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
//
// Every subtest opens its own store. The suite namespaces its orgs and task
// IDs with a random prefix, so it also passes against a database shared
// between subtests (and test runs), as long as no other writer uses the same
// prefix.
//
// Behaviour the suite pins beyond the doc comments of package store:
//   - times round-trip in UTC with at least microsecond precision;
//   - metadata and results round-trip as JSON values: they are compared
//     after a JSON round trip, so a number may come back as float64, and a
//     nil and an empty metadata map are equivalent;
//   - IDs, statuses and other strings sort bytewise (PostgreSQL needs
//     COLLATE "C" on the columns lists sort by);
//   - CreateTask: an empty ID or Org is an error; an empty Status is stored
//     as pending and a zero UpdatedAt as CreatedAt;
//   - ApplyTransition: a transition with UpdatedAt equal to the stored one is
//     applied; an empty Status, CurrentStep or CancelledBy, a zero TotalSteps
//     and a nil StartedAt, CompletedAt, CancelledAt or Result keep the stored
//     value; StepsCompleted, like Progress, never decreases; a terminal status
//     is never replaced by a non-terminal one;
//   - ListTasks: the total is returned with every page, including a page
//     past the end; Limit <= 0 and an unknown Sort are errors;
//   - state: Data round-trips byte for byte (including empty and non-UTF-8
//     bytes); an empty lock ID is an error for LockState and
//     RenewStateLock; a renewal (LockState or RenewStateLock of the held
//     lock) changes its RenewedAt only;
//   - plans: JSON and plan file Data round-trip byte for byte; Text as
//     given (valid UTF-8 without NUL); a task's approval and plan summary
//     round-trip as JSON, with times at microsecond precision;
//   - AppendLogs: an entry repeated inside one slice is stored once (the
//     first); ListLogs: Limit <= 0 is an error; an unknown level matches
//     nothing;
//   - events: RecordTransition writes all of a record or nothing; an event
//     is stored once per ID and its Seq increases in insertion order within
//     an org; webhooks come back in creation order with their sealed secret
//     byte for byte; deleting a webhook deletes its delivery log; Listen
//     reports appends, records and events written through another Store of
//     the same database (RunListenAcross);
//   - workspaces: Agents is never nil (empty when unowned); lists sort
//     names bytewise; concurrent first claims of one workspace leave one
//     owner (ApplyClaim's rule on a row read and locked in one transaction);
//   - policies: Rego, Description and Source round-trip as given (valid
//     UTF-8); ListPolicies sorts names bytewise; concurrent puts of one
//     name get consecutive versions, and concurrent identical puts write
//     one (NextPolicy's rule on the latest version read under a lock of
//     the name); a task's policy check round-trips as JSON, like its
//     approval; a plan's PolicyInput round-trips byte for byte, and an
//     empty one comes back empty;
//   - credential sets: every string round-trips as given (valid UTF-8),
//     sealed values included; names come back sorted, lists in their
//     order, nil lists empty; ListCredentialSets sorts names bytewise; a
//     put that keeps values racing one that replaces them never writes
//     back the older values (ApplyCredentialPut's rule on the set read
//     under a lock of the name).
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Run runs the behavioural suite against the stores open returns. open is
// called once per subtest and must register the store's Close with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	h := &harness{open: open, prefix: randomPrefix()}
	t.Run("Tasks", func(t *testing.T) {
		t.Run("CreateGet", h.testCreateGet)
		t.Run("GetNotFound", h.testGetNotFound)
		t.Run("CreateIdempotent", h.testCreateIdempotent)
		t.Run("CreateDefaults", h.testCreateDefaults)
	})
	t.Run("Transitions", func(t *testing.T) {
		t.Run("Applies", h.testTransitionApplies)
		t.Run("StaleIgnored", h.testTransitionStale)
		t.Run("ProgressNeverDecreases", h.testTransitionProgress)
		t.Run("NilFieldsKeepValues", h.testTransitionNilFields)
		t.Run("TerminalSticks", h.testTransitionTerminal)
		t.Run("ResultRoundTrip", h.testTransitionResult)
		t.Run("NotFound", h.testTransitionNotFound)
	})
	t.Run("List", func(t *testing.T) {
		t.Run("Validation", h.testListValidation)
		t.Run("OrgIsolation", h.testListOrgIsolation)
		t.Run("FiltersSortsPaging", h.testListMatrix)
		t.Run("PastTheEnd", h.testListPastEnd)
		t.Run("FullRows", h.testListFullRows)
	})
	t.Run("Logs", func(t *testing.T) {
		t.Run("AppendIdempotent", h.testLogsIdempotent)
		t.Run("DuplicateInsideBatch", h.testLogsDuplicateInBatch)
		t.Run("Empty", h.testLogsEmpty)
		t.Run("TaskIsolation", h.testLogsIsolation)
		t.Run("SinceUntil", h.testLogsSinceUntil)
		t.Run("Levels", h.testLogsLevels)
		t.Run("AfterIDPaging", h.testLogsPaging)
		t.Run("RoundTrip", h.testLogsRoundTrip)
		t.Run("Validation", h.testLogsValidation)
	})
	t.Run("State", func(t *testing.T) {
		t.Run("Versions", h.testStateVersions)
		t.Run("Locks", h.testStateLocks)
		t.Run("LockRenewal", h.testStateLockRenewal)
		t.Run("Isolation", h.testStateIsolation)
		t.Run("Concurrency", h.testStateConcurrency)
	})
	t.Run("Events", func(t *testing.T) {
		t.Run("RecordTransition", h.testRecordTransition)
		t.Run("List", h.testEventsList)
		t.Run("Webhooks", h.testWebhooks)
		t.Run("Deliveries", h.testDeliveries)
		t.Run("Listen", h.testListen)
	})
	t.Run("Plans", func(t *testing.T) {
		t.Run("RoundTrip", h.testPlansRoundTrip)
		t.Run("Files", h.testPlanFiles)
		t.Run("ApprovalTransitions", h.testApprovalTransitions)
	})
	t.Run("RunnerStats", h.testRunnerStats)
	t.Run("TaskCounts", h.testTaskCounts)
	t.Run("RunnerHosts", h.testRunnerHosts)
	t.Run("Schedules", func(t *testing.T) {
		t.Run("CRUD", h.testSchedulesCRUD)
		t.Run("List", h.testSchedulesList)
		t.Run("TasksOfSchedule", h.testTasksOfSchedule)
	})
	t.Run("Workspaces", func(t *testing.T) {
		t.Run("Claims", h.testWorkspaceClaims)
		t.Run("Agents", h.testWorkspaceAgents)
		t.Run("State", h.testWorkspaceState)
		t.Run("List", h.testWorkspaceList)
		t.Run("ClaimRace", h.testWorkspaceClaimRace)
	})
	t.Run("Policies", func(t *testing.T) {
		t.Run("Versions", h.testPolicyVersions)
		t.Run("Delete", h.testPolicyDelete)
		t.Run("OrgIsolation", h.testPolicyOrgIsolation)
		t.Run("Validation", h.testPolicyValidation)
		t.Run("ConcurrentPuts", h.testPolicyConcurrentPuts)
		t.Run("TaskPolicy", h.testPolicyTransitions)
		t.Run("PlanPolicyInput", h.testPlanPolicyInput)
	})
	t.Run("CredentialSets", func(t *testing.T) {
		t.Run("CRUD", h.testCredentialSetsCRUD)
		t.Run("OrgIsolation", h.testCredentialSetsOrgIsolation)
		t.Run("Validation", h.testCredentialSetsValidation)
		t.Run("ConcurrentPuts", h.testCredentialSetsConcurrentPuts)
		t.Run("Delivery", h.testCredentialDelivery)
	})
	t.Run("Concurrency", h.testConcurrency)
	t.Run("Ping", func(t *testing.T) {
		if err := h.open(t).Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

// harness carries the suite's opener and namespace.
type harness struct {
	open   func(t *testing.T) store.Store
	prefix string
	n      atomic.Int64
}

// name returns a new unique org or task ID of the suite's namespace.
func (h *harness) name(kind string) string {
	return fmt.Sprintf("%s-%s-%d", h.prefix, kind, h.n.Add(1))
}

// randomPrefix returns a short random namespace for one run of the suite.
func randomPrefix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "st" + hex.EncodeToString(b[:])
}

// baseTime is a fixed instant with sub-microsecond digits, to exercise
// truncation.
var baseTime = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }

// us truncates t to the microsecond, in UTC: how a store returns it.
func us(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// normJSON returns v as JSON would round-trip it into an any.
func normJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// normMeta normalises a metadata map: JSON round trip, empty is nil.
func normMeta(m map[string]any) any {
	if len(m) == 0 {
		return nil
	}
	return normJSON(m)
}

// diffTask lists the fields in which got differs from want, comparing as the
// suite's rules say (times at microsecond precision in UTC, JSON values as
// JSON).
func diffTask(got, want store.Task) []string {
	var d []string
	add := func(field string, g, w any) {
		d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w))
	}
	str := func(field, g, w string) {
		if g != w {
			add(field, fmt.Sprintf("%q", g), fmt.Sprintf("%q", w))
		}
	}
	num := func(field string, g, w int) {
		if g != w {
			add(field, g, w)
		}
	}
	tm := func(field string, g, w time.Time) {
		if !g.Equal(us(w)) || g.Location() != time.UTC {
			add(field, g, us(w))
		}
	}
	tp := func(field string, g, w *time.Time) {
		switch {
		case g == nil && w == nil:
		case g == nil || w == nil:
			add(field, g, w)
		default:
			tm(field, *g, *w)
		}
	}
	str("ID", got.ID, want.ID)
	str("Org", got.Org, want.Org)
	str("Name", got.Name, want.Name)
	str("Description", got.Description, want.Description)
	str("AgentID", got.AgentID, want.AgentID)
	str("RunnerID", got.RunnerID, want.RunnerID)
	str("ScheduleID", got.ScheduleID, want.ScheduleID)
	str("Status", string(got.Status), string(want.Status))
	num("Progress", got.Progress, want.Progress)
	if g, w := normMeta(got.Metadata), normMeta(want.Metadata); !reflect.DeepEqual(g, w) {
		add("Metadata", jsonString(g), jsonString(w))
	}
	str("CurrentStep", string(got.CurrentStep), string(want.CurrentStep))
	num("StepsCompleted", got.StepsCompleted, want.StepsCompleted)
	num("TotalSteps", got.TotalSteps, want.TotalSteps)
	switch {
	case got.Result == nil && want.Result == nil:
	case got.Result == nil || want.Result == nil:
		add("Result", jsonString(got.Result), jsonString(want.Result))
	default:
		if g, w := normJSON(got.Result), normJSON(want.Result); !reflect.DeepEqual(g, w) {
			add("Result", jsonString(g), jsonString(w))
		}
	}
	tm("CreatedAt", got.CreatedAt, want.CreatedAt)
	tm("UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	tp("StartedAt", got.StartedAt, want.StartedAt)
	tp("CompletedAt", got.CompletedAt, want.CompletedAt)
	tp("CancelledAt", got.CancelledAt, want.CancelledAt)
	str("CancelledBy", got.CancelledBy, want.CancelledBy)
	if g, w := normJSON(usApproval(got.Approval)), normJSON(usApproval(want.Approval)); !reflect.DeepEqual(g, w) {
		add("Approval", jsonString(g), jsonString(w))
	}
	if g, w := normJSON(got.Plan), normJSON(want.Plan); !reflect.DeepEqual(g, w) {
		add("Plan", jsonString(g), jsonString(w))
	}
	if g, w := normJSON(got.Policy), normJSON(want.Policy); !reflect.DeepEqual(g, w) {
		add("Policy", jsonString(g), jsonString(w))
	}
	return d
}

// usApproval is a copy of a with its times truncated to the microsecond.
func usApproval(a *task.ApprovalState) *task.ApprovalState {
	if a == nil {
		return nil
	}
	c := *a
	for _, p := range []**time.Time{&c.ExpiresAt, &c.ApprovedAt, &c.RejectedAt} {
		if *p != nil {
			*p = ptr(us(**p))
		}
	}
	return &c
}

// jsonString renders v as JSON for messages.
func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

// mustCreate creates tasks or fails the test.
func mustCreate(t testing.TB, s store.Store, tasks ...store.Task) {
	t.Helper()
	for _, tk := range tasks {
		if err := s.CreateTask(context.Background(), tk); err != nil {
			t.Fatalf("CreateTask(%s): %v", tk.ID, err)
		}
	}
}

// mustGet returns a task or fails the test.
func mustGet(t testing.TB, s store.Store, org, id string) store.Task {
	t.Helper()
	got, err := s.GetTask(context.Background(), org, id)
	if err != nil {
		t.Fatalf("GetTask(%s, %s): %v", org, id, err)
	}
	return got
}

// expectTask fails the test if the stored task differs from want.
func expectTask(t testing.TB, s store.Store, want store.Task) {
	t.Helper()
	got := mustGet(t, s, want.Org, want.ID)
	if d := diffTask(got, want); len(d) > 0 {
		t.Errorf("task %s differs:", want.ID)
		for _, line := range d {
			t.Errorf("  %s", line)
		}
	}
}

// mustApply applies a transition or fails the test.
func mustApply(t testing.TB, s store.Store, tr store.Transition) {
	t.Helper()
	if err := s.ApplyTransition(context.Background(), tr); err != nil {
		t.Fatalf("ApplyTransition(%s at %s): %v", tr.ID, tr.UpdatedAt, err)
	}
}

// pendingTask returns a fresh pending task of org created at created.
func pendingTask(id, org string, created time.Time) store.Task {
	return store.Task{
		ID:        id,
		Org:       org,
		Name:      "task " + id,
		AgentID:   "agent-1",
		RunnerID:  "runner-1",
		Status:    task.StatusPending,
		CreatedAt: created,
		UpdatedAt: created,
	}
}
