package server

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// testClock is a server clock (Options.Now) the test sets; unset, it is
// time.Now. The store stamps locks with time.Now, so the tests set it
// relative to a lock's RenewedAt, or ahead of the real time.
type testClock struct {
	mu sync.Mutex
	at time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() {
		return time.Now()
	}
	return c.at
}

// set stops the clock at t.
func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.at = t
	c.mu.Unlock()
}

// ahead stops the clock d after the real time: every lock taken or renewed
// until now has gone at least d without a renewal.
func (c *testClock) ahead(d time.Duration) { c.set(time.Now().Add(d)) }

// option makes the server use c.
func (c *testClock) option(o *Options) { o.Now = c.now }

// leaseSilence is how long a task's lock must go unrenewed before it is
// taken over.
const leaseSilence = store.StateLockLease + store.StateLockMargin

// wantLockedBy fails t unless w is the 423 carrying the lock info of
// holder.
func wantLockedBy(t *testing.T, what string, w *httptest.ResponseRecorder, holder string) {
	t.Helper()
	if w.Code != http.StatusLocked || !strings.Contains(w.Body.String(), `"ID":"`+holder+`"`) {
		t.Fatalf("%s: %d %s; want 423 with the info of lock %s", what, w.Code, w.Body, holder)
	}
}

// TestStateLockLeaseOfAnEarlierAttempt: a later attempt of the same task
// takes over an earlier attempt's lock only after 15 s without a renewal
// (issue 27: the earlier attempt's host was frozen, its Terraform still
// running); the holder's renewals keep it; once taken over, the earlier
// attempt's renewal, write and unlock are refused.
func TestStateLockLeaseOfAnEarlierAttempt(t *testing.T) {
	clock := &testClock{}
	ts := newTestServer(t, false, clock.option)
	const org, ws = "org-a", "lease"
	base := "/api/v1/state/" + org + "/" + ws
	ts.addTask(t, store.Task{ID: "task-l", Org: org, Status: task.StatusRunning})
	first := `{"ID":"lock-1","Operation":"OperationTypeApply","Who":"frozen-host"}`
	second := `{"ID":"lock-2","Operation":"OperationTypeApply","Who":"next-host"}`

	if w := ts.stateReq(t, "POST", base+"/lock", "task-l#10", org, ws, first); w.Code != 200 || w.Body.String() != first {
		t.Fatalf("lock by attempt 10: %d %s", w.Code, w.Body)
	}
	taken, err := ts.store.GetStateLock(t.Context(), org, ws)
	if err != nil {
		t.Fatal(err)
	}

	// While the lease is fresh, the next attempt gets the holder's info.
	w := ts.stateReq(t, "POST", base+"/lock", "task-l#20", org, ws, second)
	wantLockedBy(t, "the next attempt at once", w, "lock-1")
	clock.set(taken.RenewedAt.Add(leaseSilence - time.Second))
	w = ts.stateReq(t, "POST", base+"/lock", "task-l#20", org, ws, second)
	wantLockedBy(t, "the next attempt after 14 s", w, "lock-1")

	// The holder renews (its runner's proxy re-sends its lock request with
	// renew=true; Terraform retrying its own request renews it too): 200,
	// and the lease starts again.
	renewed := taken
	for _, path := range []string{base + "/lock", base + "/lock?renew=true"} {
		// The store stamps a renewal with the wall clock, to the
		// microsecond: let it pass the last one, so this one is later.
		for time.Now().UnixMicro() <= renewed.RenewedAt.UnixMicro() {
			runtime.Gosched()
		}
		if w := ts.stateReq(t, "POST", path, "task-l#10", org, ws, first); w.Code != 200 || w.Body.String() != first {
			t.Fatalf("renewal by attempt 10 (POST %s): %d %s", path, w.Code, w.Body)
		}
		l, err := ts.store.GetStateLock(t.Context(), org, ws)
		if err != nil || !l.RenewedAt.After(renewed.RenewedAt) || l.ID != "lock-1" || l.Fence != 10 {
			t.Fatalf("after the renewal (POST %s): %+v, %v (before %+v)", path, l, err, renewed)
		}
		renewed = l
	}
	if renewed.RenewedAt.Sub(taken.RenewedAt) > time.Second {
		t.Fatalf("the renewals took more than a second")
	}
	// 14 s after the renewal (over 15 s after the take), it still holds.
	clock.set(renewed.RenewedAt.Add(leaseSilence - time.Second))
	w = ts.stateReq(t, "POST", base+"/lock", "task-l#20", org, ws, second)
	wantLockedBy(t, "the next attempt 14 s after the renewal", w, "lock-1")
	// The renewed holder still writes under its lock.
	doc := `{"version":4,"serial":1,"lineage":"l","resources":[]}`
	if w := ts.stateReq(t, "POST", base+"?ID=lock-1", "task-l#10", org, ws, doc); w.Code != 200 {
		t.Fatalf("write by the renewed holder: %d %s", w.Code, w.Body)
	}

	// 15 s without a renewal: the next attempt takes it over.
	clock.set(renewed.RenewedAt.Add(leaseSilence))
	if w := ts.stateReq(t, "POST", base+"/lock", "task-l#20", org, ws, second); w.Code != 200 || w.Body.String() != second {
		t.Fatalf("the next attempt after 15 s of silence: %d %s", w.Code, w.Body)
	}
	if l, err := ts.store.GetStateLock(t.Context(), org, ws); err != nil || l.ID != "lock-2" || l.Fence != 20 {
		t.Fatalf("lock after the takeover: %+v, %v", l, err)
	}

	// The frozen attempt wakes up: its renewal gets the new holder's info,
	// even long after, and it can neither write nor unlock.
	w = ts.stateReq(t, "POST", base+"/lock?renew=true", "task-l#10", org, ws, first)
	wantLockedBy(t, "renewal by the superseded attempt", w, "lock-2")
	clock.ahead(time.Hour)
	w = ts.stateReq(t, "POST", base+"/lock?renew=true", "task-l#10", org, ws, first)
	wantLockedBy(t, "renewal by the superseded attempt an hour later", w, "lock-2")
	w = ts.stateReq(t, "POST", base+"/lock", "task-l#10", org, ws, first)
	wantLockedBy(t, "the superseded attempt's lock request", w, "lock-2")
	w = ts.stateReq(t, "POST", base+"?ID=lock-1", "task-l#10", org, ws, doc)
	wantLockedBy(t, "write by the superseded attempt", w, "lock-2")
	w = ts.stateReq(t, "DELETE", base+"/lock", "task-l#10", org, ws, first)
	wantLockedBy(t, "unlock by the superseded attempt", w, "lock-2")

	// Once the new holder has released the lock, the superseded attempt's
	// renewal is a 409 and takes nothing: its Terraform cannot write under
	// its old lock again.
	if w := ts.stateReq(t, "DELETE", base+"/lock", "task-l#20", org, ws, second); w.Code != 200 {
		t.Fatalf("unlock by the holder: %d %s", w.Code, w.Body)
	}
	if w := ts.stateReq(t, "POST", base+"/lock?renew=true", "task-l#10", org, ws, first); w.Code != http.StatusConflict {
		t.Fatalf("renewal of a released lock: %d %s", w.Code, w.Body)
	}
	if l, err := ts.store.GetStateLock(t.Context(), org, ws); err == nil {
		t.Fatalf("a renewal took a released lock: %+v", l)
	}
	if w := ts.stateReq(t, "POST", base+"?ID=lock-1", "task-l#10", org, ws, doc); w.Code != http.StatusConflict {
		t.Fatalf("write under a released lock: %d %s", w.Code, w.Body)
	}
}

// TestStateLockLeaseOfAFinishedTask: the lock of a finished task is taken
// over by another task only after 15 s without a renewal; a lock taken with
// a key never is; another task naming a held lock's ID does not renew it.
func TestStateLockLeaseOfAFinishedTask(t *testing.T) {
	clock := &testClock{}
	ts := newTestServer(t, false, clock.option)
	const org, ws = "org-a", "lease-done"
	base := "/api/v1/state/" + org + "/" + ws
	for _, id := range []string{"task-done", "task-next"} {
		ts.addTask(t, store.Task{ID: id, Org: org, Status: task.StatusRunning})
	}
	held := `{"ID":"done-lock","Who":"done"}`
	if w := ts.stateReq(t, "POST", base+"/lock", "task-done", org, ws, held); w.Code != 200 {
		t.Fatalf("lock by task-done: %d %s", w.Code, w.Body)
	}
	// Another task that learned the lock ID cannot renew it (or take it as
	// its own).
	w := ts.stateReq(t, "POST", base+"/lock", "task-next", org, ws, held)
	wantLockedBy(t, "the holder's lock ID from another task", w, "done-lock")
	w = ts.stateReq(t, "POST", base+"/lock?renew=true", "task-next", org, ws, held)
	wantLockedBy(t, "renewal of the holder's lock by another task", w, "done-lock")
	if l, err := ts.store.GetStateLock(t.Context(), org, ws); err != nil || l.TaskID != "task-done" {
		t.Fatalf("lock after another task named it: %+v, %v", l, err)
	}

	// The task is marked finished, but its host may still run Terraform.
	ts.setStatus(t, "task-done", task.StatusFailed)
	next := `{"ID":"next-lock"}`
	w = ts.stateReq(t, "POST", base+"/lock", "task-next", org, ws, next)
	wantLockedBy(t, "another task while the lease is fresh", w, "done-lock")
	l, err := ts.store.GetStateLock(t.Context(), org, ws)
	if err != nil {
		t.Fatal(err)
	}
	clock.set(l.RenewedAt.Add(leaseSilence - time.Microsecond))
	w = ts.stateReq(t, "POST", base+"/lock", "task-next", org, ws, next)
	wantLockedBy(t, "another task just before 15 s", w, "done-lock")
	clock.set(l.RenewedAt.Add(leaseSilence))
	if w := ts.stateReq(t, "POST", base+"/lock", "task-next", org, ws, next); w.Code != 200 {
		t.Fatalf("another task after 15 s: %d %s", w.Code, w.Body)
	}

	// A key's lock has no lease: it is never stale.
	if w := ts.do(t, req{method: "DELETE", path: base + "/lock?force=true", key: "k-admin-a"}); w.Code != 200 {
		t.Fatalf("force unlock: %d %s", w.Code, w.Body)
	}
	if w := ts.do(t, req{method: "POST", path: base + "/lock", key: "k-admin-a", body: `{"ID":"admin-lock"}`}); w.Code != 200 {
		t.Fatalf("lock by an admin key: %d %s", w.Code, w.Body)
	}
	clock.ahead(24 * time.Hour)
	w = ts.stateReq(t, "POST", base+"/lock", "task-next", org, ws, next)
	wantLockedBy(t, "a task against a key's lock a day later", w, "admin-lock")
}
