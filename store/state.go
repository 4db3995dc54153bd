package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// StateVersion is one stored version of the Terraform state of a workspace
// (org, workspace). Versions are numbered 1, 2, ... per workspace; every
// accepted write of a different state is a new version, and none is ever
// overwritten (old ones may be pruned).
type StateVersion struct {
	Org       string
	Workspace string
	// Version is assigned by the store.
	Version int64
	// Serial and Lineage are Terraform's, read from the state document.
	Serial  int64
	Lineage string
	// MD5 is the hex MD5 of the state document (not of Data, which the
	// server seals), so a repeated write of the same document is recognised.
	MD5  string
	Size int64
	// TaskID is the task whose credential wrote the version ("" for a key).
	TaskID string
	// CreatedAt is assigned by the store.
	CreatedAt time.Time
	// Data is the stored bytes. The store keeps them as given; lists leave
	// it nil.
	Data []byte
}

// StateLock is the lock of a workspace's state: Terraform's lock, held by
// one lock ID at a time.
type StateLock struct {
	Org       string
	Workspace string
	// ID is Terraform's lock ID.
	ID string
	// TaskID is the task whose credential took the lock ("" for a key).
	TaskID string
	// Fence orders the attempts of TaskID: the server lets a later attempt
	// of the task take over the lock of an earlier one, never the reverse.
	Fence int64
	// Info is Terraform's lock info document, as sent.
	Info []byte
	// CreatedAt is assigned by the store.
	CreatedAt time.Time
	// RenewedAt is when the lock was last taken or renewed, assigned by the
	// store (CreatedAt for a lock stored before renewals were recorded).
	// A lock of a task is a lease: the server lets no one take it over
	// while RenewedAt is less than StateLockLease + StateLockMargin ago.
	RenewedAt time.Time
}

// A task's state lock is a lease. The runner renews the lock of a running
// Terraform command every heartbeat (2 s) by taking it again under the same
// lock ID (a renewal, see LockState), and its watchdog stops the command
// before StateLockLease has passed without a renewal. The server lets no one
// take over a task's lock until StateLockLease + StateLockMargin have passed
// since it was last renewed, whatever else makes it stale: the margin covers
// the clocks and the time a killed command takes to die.
const (
	// StateLockLease is how long a task's state lock is held without a
	// renewal: the runner stops the command holding it before then.
	StateLockLease = 10 * time.Second
	// StateLockMargin is how much longer the server waits before it lets
	// the lock be taken over.
	StateLockMargin = 5 * time.Second
)

// LockExpired reports whether the lease of l, a lock of a task, has run out
// at now (StateLockLease + StateLockMargin since l.RenewedAt). A lock taken
// with a key (TaskID "") has no lease and never expires.
func LockExpired(l StateLock, now time.Time) bool {
	return l.TaskID != "" && now.Sub(l.RenewedAt) >= StateLockLease+StateLockMargin
}

// LockedError is returned when a state operation names a lock that is not
// the one held. Held is the lock that is held; a zero Held (ID "") means no
// lock is held, though the operation named one.
type LockedError struct{ Held StateLock }

func (e *LockedError) Error() string {
	if e.Held.ID == "" {
		return "the state is not locked"
	}
	return fmt.Sprintf("the state is locked by lock %s", e.Held.ID)
}

// StateStore keeps Terraform state per (org, workspace): its versions and its
// lock. Every operation on one workspace is atomic with respect to the others
// on it, in every process sharing the store.
type StateStore interface {
	// PutState stores v as the workspace's next version. lockID must name
	// the held lock, or be "" when no lock is held; otherwise it returns a
	// *LockedError and stores nothing. When v.MD5 equals the latest
	// version's, nothing is stored and the latest version is returned (a
	// retried write). It returns the stored version without Data.
	PutState(ctx context.Context, v StateVersion, lockID string) (StateVersion, error)
	// GetState returns the latest version, with Data, or ErrNotFound.
	GetState(ctx context.Context, org, workspace string) (StateVersion, error)
	// GetStateVersion returns one version, with Data, or ErrNotFound.
	GetStateVersion(ctx context.Context, org, workspace string, version int64) (StateVersion, error)
	// ListStateVersions returns versions newest first, without Data, and
	// the number of versions of the workspace. Limit <= 0 is an error.
	ListStateVersions(ctx context.Context, org, workspace string, limit, offset int) ([]StateVersion, int, error)
	// PruneStateVersions deletes the workspace's versions but the newest
	// keep (> 0) and returns how many it deleted. Numbering goes on: the
	// next version after 7 is 8 whatever was pruned.
	PruneStateVersions(ctx context.Context, org, workspace string, keep int) (int, error)
	// LockState takes the workspace's lock for l.ID. Taking a lock already
	// held under the same ID by the same task (l.TaskID) renews it: it sets
	// its RenewedAt to now and succeeds (also a retried request). The same
	// ID held by another task, or a lock held under another ID, is a
	// *LockedError.
	LockState(ctx context.Context, l StateLock) error
	// RenewStateLock renews the lock held under l.ID by l.TaskID, as
	// LockState does, but never takes one: when no lock is held it is a
	// *LockedError with a zero Held (the lock was released or broken, and
	// its holder must not get it back by renewing it).
	RenewStateLock(ctx context.Context, l StateLock) error
	// UnlockState releases the lock held under id and returns it. Releasing
	// when no lock is held succeeds (returning a zero lock); a lock held
	// under another ID is a *LockedError. An empty id releases whatever lock
	// is held (a forced unlock).
	UnlockState(ctx context.Context, org, workspace, id string) (StateLock, error)
	// GetStateLock returns the held lock, or ErrNotFound.
	GetStateLock(ctx context.Context, org, workspace string) (StateLock, error)
}

// CheckLock decides whether an operation naming lockID may write to a
// workspace whose held lock is held (nil when unlocked): lockID must name the
// held lock, or be "" when none is held. Every StateStore implements
// PutState's rule with it.
func CheckLock(held *StateLock, lockID string) error {
	switch {
	case held == nil && lockID == "":
		return nil
	case held == nil:
		return &LockedError{}
	case held.ID != lockID:
		return &LockedError{Held: *held}
	}
	return nil
}

// CheckUnlock decides whether UnlockState(id) may release held (nil when
// unlocked); it reports whether there is a lock to delete.
func CheckUnlock(held *StateLock, id string) (bool, error) {
	switch {
	case held == nil:
		return false, nil
	case id != "" && held.ID != id:
		return false, &LockedError{Held: *held}
	}
	return true, nil
}

// Relock is CheckRelock's verdict on a LockState.
type Relock int

const (
	// RelockNone writes nothing (it comes with an error).
	RelockNone Relock = iota
	// RelockTake writes a new lock row: no lock is held.
	RelockTake
	// RelockRenew sets the held lock's RenewedAt to now: it is held under
	// the same ID by the same task.
	RelockRenew
)

// CheckRelock decides whether LockState(l) (RenewStateLock(l) when renew
// is set) may take or renew the lock of a workspace whose held lock is held
// (nil when unlocked): RelockTake when none is held (for RenewStateLock a
// *LockedError with a zero Held), RelockRenew when l is the held lock (same
// ID, same task), else a *LockedError (another ID, or the same ID held by
// another task, which learned it: any viewer can read it). Every StateStore
// implements LockState's and RenewStateLock's rules with it.
func CheckRelock(held *StateLock, l StateLock, renew bool) (Relock, error) {
	switch {
	case l.ID == "":
		return RelockNone, fmt.Errorf("lock ID is required")
	case held == nil && renew:
		return RelockNone, &LockedError{}
	case held == nil:
		return RelockTake, nil
	case held.ID == l.ID && held.TaskID == l.TaskID:
		return RelockRenew, nil
	}
	return RelockNone, &LockedError{Held: *held}
}

// StateErr wraps err with what (an implementation's "sqlite store: put
// state"), leaving nil, ErrNotFound and *LockedError as they are, for
// errors.Is and errors.As.
func StateErr(what string, err error) error {
	var locked *LockedError
	if err == nil || errors.Is(err, ErrNotFound) || errors.As(err, &locked) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// NonNil is b, or an empty slice for nil (for NOT NULL blob columns).
func NonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
