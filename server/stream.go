package server

import (
	"context"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/terratask/terratask/events"
)

// Server-sent event streams: a task's logs (GET /tasks/{id}/logs with
// follow=true or Accept: text/event-stream) and an org's events (GET
// /events, likewise). A stream subscribes to the hub before it reads, then
// reads from its cursor whenever the hub wakes it; every event's SSE id is
// a cursor, so a client that reconnects with Last-Event-ID misses nothing
// and sees nothing twice.

// streamPage is how many entries or events a stream reads at a time.
const streamPage = 500

// streams tracks the open streams so CloseStreams can end them.
type streams struct {
	hub     *events.Hub
	stopHub context.CancelFunc
	closing chan struct{}
	once    sync.Once
	open    sync.WaitGroup
	// closed remembers tasks whose workflow is known to be closed (for the
	// end event), so many followers of one task ask Temporal once.
	closedMu sync.Mutex
	closed   map[string]bool
	// keepAlive is events.KeepAlive (tests shorten it).
	keepAlive time.Duration
}

func (s *Server) newStreams() *streams {
	st := &streams{hub: s.opts.Hub, closing: make(chan struct{}), closed: map[string]bool{}, stopHub: func() {},
		keepAlive: events.KeepAlive}
	if st.hub == nil {
		st.hub = events.NewHub()
		if s.opts.Store != nil {
			ctx, cancel := context.WithCancel(context.Background())
			st.stopHub = cancel
			go st.hub.Run(ctx, s.opts.Store, s.opts.Logger)
		}
	}
	return st
}

// CloseStreams ends every open stream (they end cleanly, without an end
// event: clients reconnect with Last-Event-ID, to another replica) and
// waits up to 5 seconds for them to finish. Register it with
// http.Server.RegisterOnShutdown, so a shutdown does not wait on streams
// that never end by themselves.
func (s *Server) CloseStreams() {
	s.streams.once.Do(func() { close(s.streams.closing) })
	done := make(chan struct{})
	go func() { s.streams.open.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	s.streams.stopHub()
}

// wantsStream reports whether a request asks for an event stream: follow
// is true, or follow is absent and Accept prefers text/event-stream.
func wantsStream(c *gin.Context, q url.Values) (bool, error) {
	if v, ok := single(q, "follow"); ok {
		switch v {
		case "true", "1":
			return true, nil
		case "false", "0":
			return false, nil
		}
		return false, errField("follow", "must be true or false")
	}
	for _, part := range strings.Split(c.GetHeader("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
			return true, nil
		}
	}
	return false, nil
}

// openStream writes the stream's headers and returns its writer; the
// stream counts as open, and against its key's cap (a 429 past it), until
// done is called. Its writes have a stream's deadlines (hardening.go).
func (s *Server) openStream(c *gin.Context) (w *events.SSEWriter, done func(), ok bool) {
	select {
	case <-s.streams.closing:
		unavailable(c, "open a stream: the server is shutting down")
		return nil, nil, false
	default:
	}
	release, ok := s.acquireStream(c)
	if !ok {
		return nil, nil, false
	}
	s.streams.open.Add(1)
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	c.Status(http.StatusOK)
	c.Writer.WriteHeaderNow()
	sw := newStreamWriter(c.Writer, s.opts.WriteTimeout)
	sw.Flush()
	return events.NewSSEWriter(sw, sw.Flush), func() { release(); s.streams.open.Done() }, true
}
