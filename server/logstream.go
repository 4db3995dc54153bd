package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// SSE event names of a task's log stream.
const (
	sseLog    = "log"
	sseStatus = "status"
	sseEnd    = "end"
)

// statusSuffix marks the SSE id of a status event: "N" is the log event of
// log entry N, "N:status" the status event of the same entry (a
// transition's line), which follows it.
const statusSuffix = ":status"

// logCursor is a position in a task's log stream.
type logCursor struct {
	id int64
	// statusSent: the status event of entry id was sent too ("N:status").
	statusSent bool
}

// parseLogCursor reads a Last-Event-ID or cursor of a log stream.
func parseLogCursor(v string) (logCursor, error) {
	c := logCursor{}
	if rest, ok := strings.CutSuffix(v, statusSuffix); ok {
		v, c.statusSent = rest, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
		return logCursor{}, errors.New("must be the id of an event of this stream")
	}
	c.id = n
	return c, nil
}

// followQuery is a parsed request to follow a task's logs.
type followQuery struct {
	store.LogQuery
	from logCursor
}

// parseFollowQuery validates the query of a log stream: the logs route's
// filters (level, start_time and end_time apply to log events), and a
// cursor, as the cursor parameter or the Last-Event-ID header.
func parseFollowQuery(q url.Values, lastEventID string) (followQuery, error) {
	rest := url.Values{}
	for k, vs := range q {
		switch k {
		case "follow":
		case "limit":
			return followQuery{}, errField("limit", "does not apply to a stream")
		default:
			rest[k] = vs
		}
	}
	cursor := rest.Get("cursor")
	delete(rest, "cursor")
	lq, err := parseLogQuery(rest)
	if err != nil {
		return followQuery{}, err
	}
	fq := followQuery{LogQuery: lq}
	switch {
	case lastEventID != "":
		if fq.from, err = parseLogCursor(lastEventID); err != nil {
			return followQuery{}, &fieldError{Field: "Last-Event-ID", Message: err.Error()}
		}
	case cursor != "":
		if fq.from, err = parseLogCursor(cursor); err != nil {
			return followQuery{}, errField("cursor", "%s", err.Error())
		}
	}
	return fq, nil
}

// workflowMeta is the metadata of the workflow's line of a transition.
type workflowMeta struct {
	Component string      `json:"component"`
	Status    task.Status `json:"status"`
	Step      task.Step   `json:"step"`
	Progress  int         `json:"progress"`
}

// transitionOf returns the status event of a log entry that is a
// transition's line.
func transitionOf(e store.LogEntry) (api.StatusEvent, bool) {
	if e.Stream != "task" || len(e.MetadataJSON) == 0 {
		return api.StatusEvent{}, false
	}
	var m workflowMeta
	if json.Unmarshal(e.MetadataJSON, &m) != nil || m.Component != "workflow" || m.Status == "" {
		return api.StatusEvent{}, false
	}
	return api.StatusEvent{TaskID: e.TaskID, Status: m.Status, Step: m.Step, Progress: m.Progress,
		Message: e.Message, Timestamp: api.LogTime(e.Timestamp)}, true
}

// logFollower is one follower of a task's log stream.
type logFollower struct {
	s      *Server
	w      *events.SSEWriter
	q      followQuery
	taskID string
	org    string
	status task.Status // the latest status seen
	ended  bool        // a terminal status was seen
	cur    logCursor
	levels map[task.Level]bool
}

// followLogs streams a task's log entries as log events, its transitions as
// status events, and a final end event once the task ended, its workflow
// closed (after its last step's cleanup) and every line was sent.
func (s *Server) followLogs(c *gin.Context, q url.Values) {
	fq, err := parseFollowQuery(q, c.GetHeader("Last-Event-ID"))
	if err != nil {
		var fe *fieldError
		errors.As(err, &fe)
		if fe.Field == "Last-Event-ID" {
			badHeader(c, fe.Field, fe.Error())
			return
		}
		badParameter(c, fe.Field, fe.Error())
		return
	}
	t, ok := s.loadTask(c)
	if !ok {
		return
	}
	// Subscribe before the first read: a line written between the read and
	// the wait still wakes the stream.
	sub := s.streams.hub.FollowTask(t.ID)
	defer sub.Close()
	w, done, ok := s.openStream(c)
	if !ok {
		return
	}
	defer done()
	f := &logFollower{s: s, w: w, q: fq, taskID: t.ID, org: t.Org, status: t.Status, ended: t.Status.Terminal(), cur: fq.from}
	if len(fq.Levels) > 0 {
		f.levels = map[task.Level]bool{}
		for _, l := range fq.Levels {
			f.levels[l] = true
		}
	}
	ctx := c.Request.Context()
	if err := f.run(ctx, sub); err != nil && ctx.Err() == nil {
		s.opts.Logger.Debug("log stream ended", zap.String("task_id", t.ID), zap.Error(err))
	}
}

func (f *logFollower) run(ctx context.Context, sub *events.Follower) error {
	keepAlive := time.NewTicker(f.s.streams.keepAlive)
	defer keepAlive.Stop()
	var recheck <-chan time.Time
	wait := 200 * time.Millisecond
	for {
		if err := f.drain(ctx); err != nil {
			return err
		}
		if f.ended {
			if f.s.workflowClosed(ctx, f.taskID) {
				// The workflow ran its last activity: whatever it wrote is
				// in the store. Send it, then the end.
				if err := f.drain(ctx); err != nil {
					return err
				}
				return f.end()
			}
			recheck = time.After(wait)
			wait = min(2*wait, 2*time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.s.streams.closing:
			return nil
		case <-sub.C:
		case <-recheck:
		case <-keepAlive.C:
			if err := f.w.Comment("keep-alive"); err != nil {
				return err
			}
			// A workflow closed without a terminal transition (terminated
			// from Temporal) ends the stream too.
			if !f.ended && f.s.workflowClosed(ctx, f.taskID) {
				f.ended = true
			}
		}
	}
}

// drain sends every entry after the cursor.
func (f *logFollower) drain(ctx context.Context) error {
	for {
		after := f.cur.id
		if !f.cur.statusSent && after > 0 {
			after-- // entry cur.id again: its status event is still due
		}
		entries, err := f.s.opts.Store.ListLogs(ctx, store.LogQuery{TaskID: f.taskID, AfterID: after, Limit: streamPage, RawMetadata: true})
		if err != nil {
			return fmt.Errorf("reading logs: %w", err)
		}
		for _, e := range entries {
			if err := f.send(e); err != nil {
				return err
			}
		}
		if len(entries) < streamPage {
			return nil
		}
	}
}

// send writes an entry's log event (unless filtered out, or sent before)
// and, for a transition's line, its status event.
func (f *logFollower) send(e store.LogEntry) error {
	id := strconv.FormatInt(e.ID, 10)
	if e.ID > f.cur.id && f.wantLog(e) {
		meta := e.MetadataJSON
		if len(meta) == 0 {
			meta = json.RawMessage(`{}`)
		}
		data, err := json.Marshal(api.LogEntry{Timestamp: api.LogTime(e.Timestamp), Level: e.Level, Message: e.Message, Metadata: meta})
		if err != nil {
			return err
		}
		if err := f.w.Event(sseLog, id, data); err != nil {
			return err
		}
	}
	f.cur = logCursor{id: e.ID}
	if st, ok := transitionOf(e); ok {
		data, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if err := f.w.Event(sseStatus, id+statusSuffix, data); err != nil {
			return err
		}
		f.status = st.Status
		if st.Status.Terminal() {
			f.ended = true
		}
	}
	f.cur.statusSent = true
	return nil
}

func (f *logFollower) wantLog(e store.LogEntry) bool {
	if f.levels != nil && !f.levels[e.Level] {
		return false
	}
	if f.q.Since != nil && e.Timestamp.Before(*f.q.Since) {
		return false
	}
	if f.q.Until != nil && e.Timestamp.After(*f.q.Until) {
		return false
	}
	return true
}

func (f *logFollower) end() error {
	st := f.status
	if t, err := f.s.opts.Store.GetTask(context.Background(), f.org, f.taskID); err == nil {
		st = t.Status
	}
	data, err := json.Marshal(api.EndEvent{TaskID: f.taskID, Status: st})
	if err != nil {
		return err
	}
	return f.w.Event(sseEnd, "", data)
}

// workflowClosed reports whether a task's workflow has closed (or is gone):
// nothing will write to its logs any more.
func (s *Server) workflowClosed(ctx context.Context, taskID string) bool {
	if s.opts.Temporal == nil {
		return true
	}
	s.streams.closedMu.Lock()
	known := s.streams.closed[taskID]
	s.streams.closedMu.Unlock()
	if known {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	d, err := s.opts.Temporal.DescribeWorkflowExecution(ctx, taskID, "")
	closed := false
	switch {
	case isNotFound(err):
		closed = true
	case err != nil:
		return false
	default:
		closed = d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}
	if closed {
		s.streams.closedMu.Lock()
		if len(s.streams.closed) > 10000 {
			s.streams.closed = map[string]bool{}
		}
		s.streams.closed[taskID] = true
		s.streams.closedMu.Unlock()
	}
	return closed
}
