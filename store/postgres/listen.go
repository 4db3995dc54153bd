package postgres

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/internal/sqlkit"
)

// changesChannel is the LISTEN/NOTIFY channel of new log lines ("l:" and
// the task ID) and new events ("e:" and the org). Every writer notifies on
// it in the transaction that writes, so a notification arrives only once
// what it announces is committed, from any process.
const changesChannel = "terratask_changes"

// notifyTasksSQL notifies the followers of each task of $2.
const notifyTasksSQL = `SELECT pg_notify($1::text, 'l:' || t) FROM unnest($2::text[]) AS t`

// listener is a Store's one LISTEN connection, shared by every Listen call.
type listener struct {
	feed   sqlkit.Feed
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func newListener() *listener {
	ctx, cancel := context.WithCancel(context.Background())
	return &listener{ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// close stops the LISTEN connection, if it runs.
func (l *listener) close() {
	l.cancel()
	started := true
	l.once.Do(func() { started = false })
	if started {
		<-l.done
	}
}

// Listen calls fn for each change until ctx ends. One connection of this
// Store LISTENs for every caller; when it has to reconnect, callers get a
// Change with All set, since notifications may have been missed meanwhile.
func (s *Store) Listen(ctx context.Context, fn func(store.Change)) error {
	unsubscribe := s.listen.feed.Subscribe(fn)
	defer unsubscribe()
	s.listen.once.Do(func() { go s.runListener() })
	select {
	case <-ctx.Done():
		return nil
	case <-s.listen.ctx.Done():
		return store.ErrClosed
	}
}

func (s *Store) runListener() {
	defer close(s.listen.done)
	ctx := s.listen.ctx
	for ctx.Err() == nil {
		err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		_ = err // reconnect after a pause; followers re-read on the All change
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// listenOnce connects, LISTENs and publishes notifications until the
// connection fails or ctx ends.
func (s *Store) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+changesChannel); err != nil {
		return err
	}
	// Whatever was written before the LISTEN took effect (before the first
	// connection, or while reconnecting) was not announced: every follower
	// reads again.
	s.listen.feed.Publish(store.Change{All: true})
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		kind, v, ok := strings.Cut(n.Payload, ":")
		switch {
		case !ok:
		case kind == "l":
			s.listen.feed.Publish(store.Change{TaskID: v})
		case kind == "e":
			s.listen.feed.Publish(store.Change{Org: v})
		}
	}
}
