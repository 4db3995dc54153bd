package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
)

// stateVersion returns a version of (org, ws) whose document is doc.
func stateVersion(org, ws, doc string, serial int64) store.StateVersion {
	return store.StateVersion{
		Org: org, Workspace: ws, Serial: serial, Lineage: "lin-" + ws,
		MD5: fmt.Sprintf("md5-%s", doc), Size: int64(len(doc)), TaskID: "task-" + doc,
		Data: []byte(doc + "\xff\x00"),
	}
}

// wantLocked checks err is a *store.LockedError naming heldID ("" for none).
func wantLocked(t *testing.T, what string, err error, heldID string) {
	t.Helper()
	var locked *store.LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("%s: got %v, want a *store.LockedError", what, err)
	}
	if locked.Held.ID != heldID {
		t.Fatalf("%s: held lock %q, want %q", what, locked.Held.ID, heldID)
	}
}

func (h *harness) testStateVersions(t *testing.T) {
	s := h.open(t)
	ctx := t.Context()
	org, ws := h.name("org"), h.name("ws")

	if _, err := s.GetState(ctx, org, ws); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetState of a new workspace: %v, want ErrNotFound", err)
	}
	if vs, total, err := s.ListStateVersions(ctx, org, ws, 10, 0); err != nil || len(vs) != 0 || total != 0 {
		t.Fatalf("ListStateVersions of a new workspace: %v, %d, %v", vs, total, err)
	}
	before := time.Now().Add(-time.Second)
	v1, err := s.PutState(ctx, stateVersion(org, ws, "a", 1), "")
	if err != nil {
		t.Fatalf("PutState: %v", err)
	}
	if v1.Version != 1 || v1.Data != nil || v1.CreatedAt.Before(before) || v1.CreatedAt.Location() != time.UTC {
		t.Fatalf("first version: %+v", v1)
	}
	v2, err := s.PutState(ctx, stateVersion(org, ws, "b", 2), "")
	if err != nil || v2.Version != 2 {
		t.Fatalf("second PutState: %+v, %v", v2, err)
	}
	// The same document again is a retried write: no new version.
	again, err := s.PutState(ctx, stateVersion(org, ws, "b", 2), "")
	if err != nil || again.Version != 2 {
		t.Fatalf("repeated PutState: %+v, %v", again, err)
	}
	// A document equal to an older version (a rollback) is a new version.
	v3, err := s.PutState(ctx, stateVersion(org, ws, "a", 3), "")
	if err != nil || v3.Version != 3 {
		t.Fatalf("rollback PutState: %+v, %v", v3, err)
	}

	got, err := s.GetState(ctx, org, ws)
	want := stateVersion(org, ws, "a", 3)
	if err != nil || got.Version != 3 || got.Serial != 3 || !bytes.Equal(got.Data, want.Data) || got.MD5 != want.MD5 ||
		got.Lineage != want.Lineage || got.Size != want.Size || got.TaskID != want.TaskID || !got.CreatedAt.Equal(v3.CreatedAt) {
		t.Fatalf("GetState: %+v, %v; want version 3 of %+v", got, err, want)
	}
	old, err := s.GetStateVersion(ctx, org, ws, 2)
	if err != nil || old.Version != 2 || !bytes.Equal(old.Data, []byte("b\xff\x00")) {
		t.Fatalf("GetStateVersion 2: %+v, %v", old, err)
	}
	if _, err := s.GetStateVersion(ctx, org, ws, 4); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetStateVersion 4: %v, want ErrNotFound", err)
	}

	vs, total, err := s.ListStateVersions(ctx, org, ws, 2, 0)
	if err != nil || total != 3 || len(vs) != 2 || vs[0].Version != 3 || vs[1].Version != 2 || vs[0].Data != nil {
		t.Fatalf("ListStateVersions page 1: %+v, %d, %v", vs, total, err)
	}
	vs, total, err = s.ListStateVersions(ctx, org, ws, 2, 2)
	if err != nil || total != 3 || len(vs) != 1 || vs[0].Version != 1 || vs[0].MD5 != "md5-a" {
		t.Fatalf("ListStateVersions page 2: %+v, %d, %v", vs, total, err)
	}
	vs, total, err = s.ListStateVersions(ctx, org, ws, 2, 10)
	if err != nil || total != 3 || len(vs) != 0 {
		t.Fatalf("ListStateVersions past the end: %+v, %d, %v", vs, total, err)
	}
	if _, _, err := s.ListStateVersions(ctx, org, ws, 0, 0); err == nil {
		t.Fatal("ListStateVersions with limit 0: no error")
	}

	// Pruning keeps the newest; numbering goes on.
	for i, doc := range []string{"c", "d"} {
		if v, err := s.PutState(ctx, stateVersion(org, ws, doc, int64(4+i)), ""); err != nil || v.Version != int64(4+i) {
			t.Fatalf("PutState %s: %+v, %v", doc, v, err)
		}
	}
	if _, err := s.PruneStateVersions(ctx, org, ws, 0); err == nil {
		t.Fatal("PruneStateVersions keeping 0: no error")
	}
	if n, err := s.PruneStateVersions(ctx, org, ws, 2); err != nil || n != 3 {
		t.Fatalf("PruneStateVersions keeping 2 of 5: deleted %d, %v", n, err)
	}
	if n, err := s.PruneStateVersions(ctx, org, ws, 2); err != nil || n != 0 {
		t.Fatalf("PruneStateVersions again: deleted %d, %v", n, err)
	}
	vs, total, err = s.ListStateVersions(ctx, org, ws, 10, 0)
	if err != nil || total != 2 || len(vs) != 2 || vs[0].Version != 5 || vs[1].Version != 4 {
		t.Fatalf("after pruning: %+v, %d, %v", vs, total, err)
	}
	if _, err := s.GetStateVersion(ctx, org, ws, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a pruned version: %v", err)
	}
	if v, err := s.PutState(ctx, stateVersion(org, ws, "e", 6), ""); err != nil || v.Version != 6 {
		t.Fatalf("PutState after pruning: %+v, %v", v, err)
	}
}

func (h *harness) testStateLocks(t *testing.T) {
	s := h.open(t)
	ctx := t.Context()
	org, ws := h.name("org"), h.name("ws")
	lock := func(id string) store.StateLock {
		return store.StateLock{Org: org, Workspace: ws, ID: id, TaskID: "task-" + id, Fence: 1<<32 + 3, Info: []byte(`{"ID":"` + id + `"}`)}
	}

	if _, err := s.GetStateLock(ctx, org, ws); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetStateLock unlocked: %v", err)
	}
	if err := s.LockState(ctx, lock("")); err == nil {
		t.Fatal("LockState with an empty ID: no error")
	}
	if err := s.LockState(ctx, lock("A")); err != nil {
		t.Fatalf("LockState A: %v", err)
	}
	if err := s.LockState(ctx, lock("A")); err != nil {
		t.Fatalf("LockState A again: %v", err)
	}
	wantLocked(t, "LockState B", s.LockState(ctx, lock("B")), "A")
	held, err := s.GetStateLock(ctx, org, ws)
	if err != nil || held.ID != "A" || held.TaskID != "task-A" || held.Fence != 1<<32+3 || string(held.Info) != `{"ID":"A"}` || held.CreatedAt.IsZero() ||
		held.RenewedAt.Before(held.CreatedAt) {
		t.Fatalf("GetStateLock: %+v, %v", held, err)
	}

	_, err = s.PutState(ctx, stateVersion(org, ws, "x", 1), "")
	wantLocked(t, "PutState without the lock", err, "A")
	_, err = s.PutState(ctx, stateVersion(org, ws, "x", 1), "B")
	wantLocked(t, "PutState with another lock", err, "A")
	if _, err := s.GetState(ctx, org, ws); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused PutState stored a version: %v", err)
	}
	if v, err := s.PutState(ctx, stateVersion(org, ws, "x", 1), "A"); err != nil || v.Version != 1 {
		t.Fatalf("PutState with the lock: %+v, %v", v, err)
	}

	_, err = s.UnlockState(ctx, org, ws, "B")
	wantLocked(t, "UnlockState B", err, "A")
	released, err := s.UnlockState(ctx, org, ws, "A")
	if err != nil || released.ID != "A" || released.TaskID != "task-A" {
		t.Fatalf("UnlockState A: %+v, %v", released, err)
	}
	if released, err := s.UnlockState(ctx, org, ws, "A"); err != nil || released.ID != "" {
		t.Fatalf("UnlockState A again: %+v, %v", released, err)
	}
	// A write naming a lock that is no longer held is refused: its holder
	// lost the lock (a forced unlock) and must not overwrite what came next.
	_, err = s.PutState(ctx, stateVersion(org, ws, "y", 2), "A")
	wantLocked(t, "PutState with a released lock", err, "")

	if err := s.LockState(ctx, lock("C")); err != nil {
		t.Fatalf("LockState C: %v", err)
	}
	released, err = s.UnlockState(ctx, org, ws, "")
	if err != nil || released.ID != "C" {
		t.Fatalf("forced UnlockState: %+v, %v", released, err)
	}
	if _, err := s.GetStateLock(ctx, org, ws); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetStateLock after a forced unlock: %v", err)
	}
}

func (h *harness) testStateIsolation(t *testing.T) {
	s := h.open(t)
	ctx := t.Context()
	orgA, orgB, ws := h.name("org"), h.name("org"), h.name("ws")
	if err := s.LockState(ctx, store.StateLock{Org: orgA, Workspace: ws, ID: "A"}); err != nil {
		t.Fatalf("LockState: %v", err)
	}
	if _, err := s.PutState(ctx, stateVersion(orgA, ws, "a", 1), "A"); err != nil {
		t.Fatalf("PutState: %v", err)
	}
	// The same workspace name in another org, and another workspace of the
	// org, share neither lock nor versions.
	for _, other := range [][2]string{{orgB, ws}, {orgA, h.name("ws")}} {
		if _, err := s.GetState(ctx, other[0], other[1]); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetState %v: %v", other, err)
		}
		if _, err := s.GetStateLock(ctx, other[0], other[1]); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetStateLock %v: %v", other, err)
		}
		if v, err := s.PutState(ctx, stateVersion(other[0], other[1], "b", 1), ""); err != nil || v.Version != 1 {
			t.Fatalf("PutState %v: %+v, %v", other, v, err)
		}
	}
}

func (h *harness) testStateConcurrency(t *testing.T) {
	s := h.open(t)
	ctx := t.Context()
	org, ws := h.name("org"), h.name("ws")
	const n = 12

	// Of n concurrent lockers, exactly one gets the lock.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.LockState(ctx, store.StateLock{Org: org, Workspace: ws, ID: fmt.Sprint("L", i)})
		}()
	}
	wg.Wait()
	winners := 0
	for i, err := range errs {
		var locked *store.LockedError
		switch {
		case err == nil:
			winners++
		case !errors.As(err, &locked):
			t.Fatalf("locker %d: %v", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d lockers got the lock, want 1", winners)
	}
	if _, err := s.UnlockState(ctx, org, ws, ""); err != nil {
		t.Fatalf("UnlockState: %v", err)
	}

	// n concurrent writes of distinct documents get versions 1..n, each once.
	got := make([]int64, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := s.PutState(ctx, stateVersion(org, ws, fmt.Sprint("doc", i), int64(i)), "")
			errs[i], got[i] = err, v.Version
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		if got[i] < 1 || got[i] > n || seen[got[i]] {
			t.Fatalf("versions %v: want each of 1..%d once", got, n)
		}
		seen[got[i]] = true
	}
}

// testStateLockRenewal: a task's lock is a lease. Taking it sets RenewedAt;
// taking it again under the same ID and task renews it (RenewedAt moves on,
// nothing else changes); the same ID from another task, or from a key, is
// refused. RenewStateLock renews the same way but never takes a lock.
func (h *harness) testStateLockRenewal(t *testing.T) {
	s := h.open(t)
	ctx := t.Context()
	org, ws := h.name("org"), h.name("ws")
	get := func(what string) store.StateLock {
		t.Helper()
		l, err := s.GetStateLock(ctx, org, ws)
		if err != nil {
			t.Fatalf("GetStateLock %s: %v", what, err)
		}
		return l
	}
	tick := func() { time.Sleep(3 * time.Millisecond) } // RenewedAt has microseconds
	a := store.StateLock{Org: org, Workspace: ws, ID: "A", TaskID: "task-1", Fence: 7, Info: []byte(`{"ID":"A","Who":"first"}`)}

	before := time.Now().Add(-time.Second)
	if err := s.LockState(ctx, a); err != nil {
		t.Fatalf("LockState A: %v", err)
	}
	taken := get("after the take")
	if taken.RenewedAt.Before(before) || taken.RenewedAt.After(time.Now().Add(time.Second)) || taken.RenewedAt.Location() != time.UTC ||
		!taken.RenewedAt.Equal(taken.CreatedAt) {
		t.Fatalf("a new lock: RenewedAt %v, CreatedAt %v; want both now", taken.RenewedAt, taken.CreatedAt)
	}

	// A renewal moves RenewedAt on and keeps the rest, even when the
	// request's fence and info differ.
	tick()
	renew := a
	renew.Fence, renew.Info = 9, []byte(`{"ID":"A","Who":"renewal"}`)
	if err := s.LockState(ctx, renew); err != nil {
		t.Fatalf("renewing A: %v", err)
	}
	renewed := get("after the renewal")
	if !renewed.RenewedAt.After(taken.RenewedAt) || !renewed.CreatedAt.Equal(taken.CreatedAt) ||
		renewed.Fence != 7 || renewed.TaskID != "task-1" || string(renewed.Info) != `{"ID":"A","Who":"first"}` {
		t.Fatalf("after a renewal: %+v; taken %+v", renewed, taken)
	}

	// The same lock ID from another task, or from a key, is not a renewal.
	tick()
	other := a
	other.TaskID = "task-2"
	wantLocked(t, "LockState A by another task", s.LockState(ctx, other), "A")
	key := a
	key.TaskID = ""
	wantLocked(t, "LockState A by a key", s.LockState(ctx, key), "A")
	if l := get("after refused renewals"); !l.RenewedAt.Equal(renewed.RenewedAt) || l.TaskID != "task-1" {
		t.Fatalf("refused renewals changed the lock: %+v, was %+v", l, renewed)
	}
	// Writes go on under the renewed lock.
	if _, err := s.PutState(ctx, stateVersion(org, ws, "r", 1), "A"); err != nil {
		t.Fatalf("PutState under a renewed lock: %v", err)
	}

	// RenewStateLock renews as LockState does...
	tick()
	if err := s.RenewStateLock(ctx, a); err != nil {
		t.Fatalf("RenewStateLock A: %v", err)
	}
	again := get("after RenewStateLock")
	if !again.RenewedAt.After(renewed.RenewedAt) || !again.CreatedAt.Equal(taken.CreatedAt) || again.Fence != 7 {
		t.Fatalf("after RenewStateLock: %+v; was %+v", again, renewed)
	}
	renewed = again
	wantLocked(t, "RenewStateLock A by another task", s.RenewStateLock(ctx, other), "A")
	wantLocked(t, "RenewStateLock B", s.RenewStateLock(ctx, store.StateLock{Org: org, Workspace: ws, ID: "B", TaskID: "task-1"}), "A")
	if err := s.RenewStateLock(ctx, store.StateLock{Org: org, Workspace: ws, TaskID: "task-1"}); err == nil {
		t.Fatal("RenewStateLock with an empty ID: no error")
	}

	// Once released, the lock is taken afresh (also under the same ID)...
	if _, err := s.UnlockState(ctx, org, ws, "A"); err != nil {
		t.Fatalf("UnlockState A: %v", err)
	}
	// ... but not by a renewal: its holder released it, or lost it.
	wantLocked(t, "RenewStateLock of a released lock", s.RenewStateLock(ctx, a), "")
	if _, err := s.GetStateLock(ctx, org, ws); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RenewStateLock of a released lock took it: %v", err)
	}
	tick()
	if err := s.LockState(ctx, other); err != nil {
		t.Fatalf("LockState A by another task once released: %v", err)
	}
	retaken := get("after the new take")
	if retaken.TaskID != "task-2" || !retaken.CreatedAt.After(renewed.RenewedAt) || !retaken.RenewedAt.Equal(retaken.CreatedAt) {
		t.Fatalf("a lock taken again: %+v", retaken)
	}
	if _, err := s.UnlockState(ctx, org, ws, ""); err != nil {
		t.Fatalf("forced UnlockState: %v", err)
	}

	// A key's lock renews under the same ID too.
	if err := s.LockState(ctx, key); err != nil {
		t.Fatalf("LockState A by a key: %v", err)
	}
	keyTaken := get("a key's lock")
	tick()
	if err := s.LockState(ctx, key); err != nil {
		t.Fatalf("renewing a key's lock: %v", err)
	}
	if l := get("a key's renewed lock"); !l.RenewedAt.After(keyTaken.RenewedAt) || l.TaskID != "" {
		t.Fatalf("a key's renewed lock: %+v, was %+v", l, keyTaken)
	}
	wantLocked(t, "LockState of a key's lock by a task", s.LockState(ctx, a), "A")
}
