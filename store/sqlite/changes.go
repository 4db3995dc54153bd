package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/internal/sqlkit"
)

// PollInterval is how often a Store that has listeners looks for log lines
// and events that other processes wrote to the same file (a `terratask
// runner` sharing a server's SQLite store). Writes through this Store reach
// its listeners at once.
const PollInterval = 250 * time.Millisecond

// changeFeed tells Listen callers about this Store's writes at once, and
// about other processes' writes by one shared poll.
type changeFeed struct {
	sqlkit.Feed
	once sync.Once
	stop chan struct{}
	done chan struct{}
}

func newChangeFeed() *changeFeed {
	return &changeFeed{stop: make(chan struct{}), done: make(chan struct{})}
}

func (f *changeFeed) publish(c store.Change) { f.Publish(c) }

func (f *changeFeed) publishLogs(entries []store.LogEntry) { f.PublishLogs(entries) }

// close stops the poll, if it runs.
func (f *changeFeed) close() {
	select {
	case <-f.stop:
		return
	default:
	}
	close(f.stop)
	started := true
	f.once.Do(func() { started = false })
	if started {
		<-f.done
	}
}

// Listen calls fn for each change until ctx ends: at once for writes of
// this Store, within about PollInterval for writes of other processes.
func (s *Store) Listen(ctx context.Context, fn func(store.Change)) error {
	unsubscribe := s.feed.Subscribe(fn)
	defer unsubscribe()
	s.feed.once.Do(func() { go s.poll() })
	select {
	case <-ctx.Done():
		return nil
	case <-s.feed.stop:
		return store.ErrClosed
	}
}

// poll looks for rows beyond the highest log ID and event seq it has seen
// and tells listeners about their tasks and orgs. Rows written by this
// Store are seen here too; their listeners read again and find nothing new.
func (s *Store) poll() {
	defer close(s.feed.done)
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	// The poll reads only while someone listens; the first read after a
	// pause sets where the next starts.
	var lastLog, lastEvent int64
	baselined := false
	for {
		select {
		case <-s.feed.stop:
			return
		case <-t.C:
		}
		if s.feed.Empty() {
			baselined = false
			continue
		}
		logID, eventSeq, err := s.maxIDs()
		if err != nil {
			continue
		}
		if !baselined {
			// Other processes' writes before this point were not
			// announced: every follower reads again.
			lastLog, lastEvent, baselined = logID, eventSeq, true
			s.feed.Publish(store.Change{All: true})
			continue
		}
		if logID > lastLog {
			s.publishDistinct(`SELECT DISTINCT task_id FROM logs WHERE id > ? AND id <= ?`, lastLog, logID,
				func(v string) store.Change { return store.Change{TaskID: v} })
			lastLog = logID
		}
		if eventSeq > lastEvent {
			s.publishDistinct(`SELECT DISTINCT org FROM events WHERE seq > ? AND seq <= ?`, lastEvent, eventSeq,
				func(v string) store.Change { return store.Change{Org: v} })
			lastEvent = eventSeq
		}
	}
}

func (s *Store) maxIDs() (logID, eventSeq int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = s.rst.queryRow(ctx, `SELECT (SELECT coalesce(max(id), 0) FROM logs), (SELECT coalesce(max(seq), 0) FROM events)`, nil,
		func(r *sql.Row) error { return r.Scan(&logID, &eventSeq) })
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite store: poll: %w", err)
	}
	return logID, eventSeq, nil
}

func (s *Store) publishDistinct(query string, after, upTo int64, change func(string) store.Change) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, release, err := s.rst.get(ctx, query)
	if err != nil {
		s.feed.Publish(store.Change{All: true})
		return
	}
	defer release()
	rows, err := st.QueryContext(ctx, after, upTo)
	if err != nil {
		s.feed.Publish(store.Change{All: true})
		return
	}
	defer rows.Close()
	var vals []string
	for rows.Next() {
		var v string
		if rows.Scan(&v) == nil {
			vals = append(vals, v)
		}
	}
	for _, v := range vals {
		s.feed.Publish(change(v))
	}
}
