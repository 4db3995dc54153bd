package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// eventRoutes registers the routes of package events: the org's event
// stream, webhooks and their delivery logs.
func (s *Server) eventRoutes(g *gin.RouterGroup) {
	g.GET("/events", s.getEvents)
	g.GET("/webhooks", s.listWebhooks)
	g.POST("/webhooks", s.createWebhook)
	g.GET("/webhooks/signing-secret", s.getSigningSecret)
	g.GET("/webhooks/:webhookId", s.getWebhook)
	g.DELETE("/webhooks/:webhookId", s.deleteWebhook)
	g.GET("/webhooks/:webhookId/deliveries", s.listDeliveries)
}

// Limits of the events route without following.
const (
	defaultEventLimit = 100
	maxEventLimit     = 1000
)

var eventParams = map[string]bool{"type": true, "agent": true, "runner": true, "cursor": true, "limit": true, "follow": true}

// eventQuery is a parsed request of GET /events.
type eventQuery struct {
	store.EventQuery
	// hasCursor: a cursor was given; without one a stream starts at the
	// org's newest event, a page at its oldest.
	hasCursor bool
}

// parseEventQuery validates the query of GET /events; lastEventID is the
// Last-Event-ID header, a cursor like the cursor parameter.
func parseEventQuery(q url.Values, lastEventID string, follow bool) (eventQuery, error) {
	eq := eventQuery{EventQuery: store.EventQuery{Limit: defaultEventLimit}}
	for k, vs := range q {
		if !eventParams[k] {
			return eq, errField(k, "unknown query parameter (allowed: type, agent, runner, cursor, limit, follow)")
		}
		if len(vs) > 1 {
			return eq, errField(k, "may be given once")
		}
	}
	if v, ok := single(q, "type"); ok {
		for _, s := range strings.Split(v, ",") {
			t := task.EventType(strings.TrimSpace(s))
			if !t.Valid() {
				return eq, errField("type", "must be one or a comma list of %s", eventTypeList())
			}
			eq.Types = append(eq.Types, t)
		}
	}
	if v, ok := single(q, "agent"); ok {
		if !validID(v) {
			return eq, errField("agent", "is not a valid agent ID")
		}
		eq.AgentID = v
	}
	if v, ok := single(q, "runner"); ok {
		if !validID(v) {
			return eq, errField("runner", "is not a valid runner ID")
		}
		eq.RunnerID = v
	}
	if v, ok := single(q, "limit"); ok {
		n, err := strconv.Atoi(v)
		switch {
		case follow:
			return eq, errField("limit", "does not apply to a stream")
		case err != nil || n < 1 || n > maxEventLimit:
			return eq, errField("limit", "must be an integer from 1 to %d", maxEventLimit)
		}
		eq.Limit = n
	}
	field, v := "cursor", q.Get("cursor")
	if lastEventID != "" {
		field, v = "Last-Event-ID", lastEventID
	}
	if v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
			return eq, &fieldError{Field: field, Message: field + ": must be the id of an event of this stream (or X-Next-Cursor)"}
		}
		eq.AfterSeq, eq.hasCursor = n, true
	}
	return eq, nil
}

func eventTypeList() string {
	names := make([]string, len(task.EventTypes))
	for i, t := range task.EventTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// getEvents lists the org's events (oldest first, a page from the cursor;
// X-Next-Cursor continues) or, with follow=true or Accept:
// text/event-stream, streams them: each event an SSE event named by its
// type, its id the cursor.
func (s *Server) getEvents(c *gin.Context) {
	q, ok := query(c)
	if !ok {
		return
	}
	follow, err := wantsStream(c, q)
	if err == nil {
		var eq eventQuery
		if eq, err = parseEventQuery(q, c.GetHeader("Last-Event-ID"), follow); err == nil {
			s.serveEvents(c, eq, follow)
			return
		}
	}
	var fe *fieldError
	errors.As(err, &fe)
	if fe.Field == "Last-Event-ID" {
		badHeader(c, fe.Field, fe.Error())
		return
	}
	badParameter(c, fe.Field, fe.Error())
}

func (s *Server) serveEvents(c *gin.Context, eq eventQuery, follow bool) {
	p := principal(c)
	eq.Org = p.Org
	if p.Agent != "" {
		if eq.AgentID != "" && eq.AgentID != p.Agent {
			eq.AgentID = "\x00" // another agent's: matches nothing
		} else {
			eq.AgentID = p.Agent
		}
	}
	ctx := c.Request.Context()
	if !follow {
		evs, err := s.opts.Store.ListEvents(ctx, eq.EventQuery)
		if err != nil {
			s.opts.Logger.Error("listing events", zap.Error(err))
			internal(c)
			return
		}
		out := make([]json.RawMessage, 0, len(evs))
		next := eq.AfterSeq
		for _, e := range evs {
			out = append(out, e.Body)
			next = e.Seq
		}
		c.Header("X-Next-Cursor", strconv.FormatInt(next, 10))
		c.JSON(http.StatusOK, out)
		return
	}
	sub := s.streams.hub.FollowOrg(p.Org)
	defer sub.Close()
	if !eq.hasCursor {
		last, err := s.opts.Store.LastEventSeq(ctx, p.Org)
		if err != nil {
			s.opts.Logger.Error("reading the event stream's end", zap.Error(err))
			internal(c)
			return
		}
		eq.AfterSeq = last
	}
	w, done, ok := s.openStream(c)
	if !ok {
		return
	}
	defer done()
	if err := s.followEvents(ctx, w, sub, eq.EventQuery); err != nil && ctx.Err() == nil {
		s.opts.Logger.Debug("event stream ended", zap.Error(err))
	}
}

// followEvents streams the events after q.AfterSeq that match q. It reads
// the org's events unfiltered and filters them here, so its cursor moves
// past the events it skips and a wake-up never reads them again.
func (s *Server) followEvents(ctx context.Context, w *events.SSEWriter, sub *events.Follower, q store.EventQuery) error {
	keepAlive := time.NewTicker(s.streams.keepAlive)
	defer keepAlive.Stop()
	read := store.EventQuery{Org: q.Org, AfterSeq: q.AfterSeq, Limit: streamPage}
	for {
		for {
			evs, err := s.opts.Store.ListEvents(ctx, read)
			if err != nil {
				return fmt.Errorf("reading events: %w", err)
			}
			for _, e := range evs {
				read.AfterSeq = e.Seq
				if !matchesQuery(e, q) {
					continue
				}
				if err := w.Event(string(e.Type), strconv.FormatInt(e.Seq, 10), e.Body); err != nil {
					return err
				}
			}
			if len(evs) < read.Limit {
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.streams.closing:
			return nil
		case <-sub.C:
		case <-keepAlive.C:
			if err := w.Comment("keep-alive"); err != nil {
				return err
			}
		}
	}
}

// matchesQuery applies an event query's filters to an event.
func matchesQuery(e store.Event, q store.EventQuery) bool {
	if q.AgentID != "" && e.AgentID != q.AgentID || q.RunnerID != "" && e.RunnerID != q.RunnerID ||
		q.TaskID != "" && e.TaskID != q.TaskID {
		return false
	}
	if len(q.Types) == 0 {
		return true
	}
	for _, t := range q.Types {
		if t == e.Type {
			return true
		}
	}
	return false
}
