// Package rwlock is a reader/writer lock whose waits end when a context is
// done, which sync.RWMutex cannot offer.
package rwlock

import (
	"context"
	"sync"
)

// Mutex is a reader/writer lock: any number of readers, or one writer. A
// waiting writer keeps new readers out, so a steady flow of readers cannot
// starve it. The zero value is an unlocked Mutex.
type Mutex struct {
	mu             sync.Mutex
	readers        int
	writer         bool
	writersWaiting int
	// changed is closed (and replaced) whenever a waiter may now succeed.
	changed chan struct{}
}

// TryRLock takes a read lock if no writer holds the lock or waits for it.
func (m *Mutex) TryRLock() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tryRLocked()
}

// TryLock takes the write lock if nobody holds the lock.
func (m *Mutex) TryLock() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tryLocked()
}

// RLock waits for a read lock until ctx is done.
func (m *Mutex) RLock(ctx context.Context) error {
	return m.wait(ctx, m.tryRLocked)
}

// Lock waits for the write lock until ctx is done.
func (m *Mutex) Lock(ctx context.Context) error {
	m.mu.Lock()
	if m.tryLocked() {
		m.mu.Unlock()
		return nil
	}
	m.writersWaiting++
	m.mu.Unlock()
	err := m.wait(ctx, m.tryLocked)
	m.mu.Lock()
	m.writersWaiting--
	if err != nil {
		// Readers held back by this writer may go on.
		m.broadcast()
	}
	m.mu.Unlock()
	return err
}

// RUnlock releases a read lock.
func (m *Mutex) RUnlock() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.readers == 0 {
		panic("rwlock: RUnlock of an unlocked Mutex")
	}
	m.readers--
	if m.readers == 0 {
		m.broadcast()
	}
}

// Unlock releases the write lock.
func (m *Mutex) Unlock() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.writer {
		panic("rwlock: Unlock of an unlocked Mutex")
	}
	m.writer = false
	m.broadcast()
}

func (m *Mutex) tryRLocked() bool {
	if m.writer || m.writersWaiting > 0 {
		return false
	}
	m.readers++
	return true
}

func (m *Mutex) tryLocked() bool {
	if m.writer || m.readers > 0 {
		return false
	}
	m.writer = true
	return true
}

// wait retries try (called with m.mu held) at every change until it
// succeeds or ctx is done.
func (m *Mutex) wait(ctx context.Context, try func() bool) error {
	for {
		m.mu.Lock()
		if try() {
			m.mu.Unlock()
			return nil
		}
		if m.changed == nil {
			m.changed = make(chan struct{})
		}
		changed := m.changed
		m.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// broadcast wakes every waiter; m.mu must be held.
func (m *Mutex) broadcast() {
	if m.changed != nil {
		close(m.changed)
		m.changed = nil
	}
}
