package sqlkit

import (
	"sync"

	"github.com/terratask/terratask/store"
)

// Feed fans the changes a store sees out to its Listen callers.
type Feed struct {
	mu   sync.Mutex
	subs map[uint64]func(store.Change)
	next uint64
}

// Subscribe adds fn; the returned function removes it.
func (f *Feed) Subscribe(fn func(store.Change)) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs == nil {
		f.subs = map[uint64]func(store.Change){}
	}
	f.next++
	id := f.next
	f.subs[id] = fn
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs, id)
	}
}

// Publish calls every subscriber with c.
func (f *Feed) Publish(c store.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fn := range f.subs {
		fn(c)
	}
}

// PublishLogs tells subscribers about the tasks of entries, once each.
func (f *Feed) PublishLogs(entries []store.LogEntry) {
	if len(entries) == 0 || f.Empty() {
		return
	}
	last := ""
	for _, e := range entries {
		if e.TaskID != last {
			f.Publish(store.Change{TaskID: e.TaskID})
			last = e.TaskID
		}
	}
}

// Empty reports whether nobody listens.
func (f *Feed) Empty() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs) == 0
}
