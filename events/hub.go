package events

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/terratask/terratask/store"
)

// Hub wakes the followers of streams. A process has one: it listens to
// the store once (store.EventStore.Listen: LISTEN/NOTIFY on PostgreSQL, the
// store's own writes and a shared poll on SQLite) and fans each change out
// to the followers of its task or org, however many there are.
type Hub struct {
	mu    sync.Mutex
	tasks map[string]map[*Follower]struct{}
	orgs  map[string]map[*Follower]struct{}
}

// NewHub returns a hub; Run feeds it.
func NewHub() *Hub {
	return &Hub{tasks: map[string]map[*Follower]struct{}{}, orgs: map[string]map[*Follower]struct{}{}}
}

// Follower is woken (C receives) when what it follows may have changed.
// Wake-ups coalesce: one pending wake-up stands for any number of changes,
// so a follower reads everything new after each.
type Follower struct {
	C   <-chan struct{}
	c   chan struct{}
	hub *Hub
	key string
	org bool
}

// FollowTask returns a follower of a task's log lines. Subscribe before
// reading, so nothing written meanwhile is missed.
func (h *Hub) FollowTask(taskID string) *Follower { return h.follow(h.tasks, taskID, false) }

// FollowOrg returns a follower of an org's events.
func (h *Hub) FollowOrg(org string) *Follower { return h.follow(h.orgs, org, true) }

func (h *Hub) follow(m map[string]map[*Follower]struct{}, key string, org bool) *Follower {
	c := make(chan struct{}, 1)
	f := &Follower{C: c, c: c, hub: h, key: key, org: org}
	h.mu.Lock()
	defer h.mu.Unlock()
	if m[key] == nil {
		m[key] = map[*Follower]struct{}{}
	}
	m[key][f] = struct{}{}
	return f
}

// Close stops the follower's wake-ups.
func (f *Follower) Close() {
	h := f.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.tasks
	if f.org {
		m = h.orgs
	}
	delete(m[f.key], f)
	if len(m[f.key]) == 0 {
		delete(m, f.key)
	}
}

func (f *Follower) wake() {
	select {
	case f.c <- struct{}{}:
	default:
	}
}

// Notify wakes the followers a change concerns.
func (h *Hub) Notify(c store.Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.All {
		for _, m := range []map[string]map[*Follower]struct{}{h.tasks, h.orgs} {
			for _, fs := range m {
				for f := range fs {
					f.wake()
				}
			}
		}
		return
	}
	if c.TaskID != "" {
		for f := range h.tasks[c.TaskID] {
			f.wake()
		}
	}
	if c.Org != "" {
		for f := range h.orgs[c.Org] {
			f.wake()
		}
	}
}

// Followers returns how many followers the hub has.
func (h *Hub) Followers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range []map[string]map[*Follower]struct{}{h.tasks, h.orgs} {
		for _, fs := range m {
			n += len(fs)
		}
	}
	return n
}

// Run feeds the hub from st until ctx ends or st closes, listening again
// (and waking every follower, which may have missed a change) if the
// listen fails.
func (h *Hub) Run(ctx context.Context, st store.EventStore, log *zap.Logger) {
	if log == nil {
		log = zap.NewNop()
	}
	for ctx.Err() == nil {
		err := st.Listen(ctx, h.Notify)
		if ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
			return
		}
		if err != nil {
			log.Warn("listening for new log lines and events failed; retrying", zap.Error(err))
		}
		h.Notify(store.Change{All: true})
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
