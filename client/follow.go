package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/task"
)

// Follow calls fn with each of the task's log entries, oldest first, each
// once, until the task has ended and its last entries are delivered; it
// returns nil then, fn's error if fn fails, or ctx's error.
//
// It reads the API's log stream (GET /tasks/{id}/logs?follow=true,
// server-sent events: log, status, end), and when the connection breaks it
// reconnects with Last-Event-ID, so nothing is lost or doubled. From a
// server without the stream it pages the logs route with the cursor
// (X-Next-Cursor) and polls the status between pages instead.
func (c *Client) Follow(ctx context.Context, id string, fn func(api.LogEntry) error, opts ...WaitOption) error {
	cfg := newWaitConfig(opts)
	err := c.followStream(ctx, id, fn, cfg)
	if errors.Is(err, errNoStream) {
		return c.followPages(ctx, id, fn, cfg)
	}
	return err
}

// errNoStream: the server does not stream logs.
var errNoStream = errors.New("the server does not stream logs")

// statusEvent is the data of a status event.
type statusEvent struct {
	TaskID   string      `json:"task_id"`
	Status   task.Status `json:"status"`
	Step     string      `json:"step"`
	Progress int         `json:"progress"`
}

func (c *Client) followStream(ctx context.Context, id string, fn func(api.LogEntry) error, cfg waitConfig) error {
	p, err := taskPath(id, "/logs")
	if err != nil {
		return err
	}
	q := url.Values{"follow": {"true"}}
	if lv := (LogOptions{Levels: cfg.levels}).values().Get("level"); lv != "" {
		q.Set("level", lv)
	}
	lastID := ""
	failures := 0
	for {
		got, err := c.streamOnce(ctx, p, q, lastID, fn, cfg)
		switch {
		case err == nil:
			return nil // the end event
		case errors.Is(err, errNoStream) && lastID != "":
			return fmt.Errorf("following %s: the server stopped streaming logs", id)
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, errStreamBroken):
			return err
		}
		if got.lastID != "" {
			lastID = got.lastID
		}
		if got.events > 0 {
			failures = 0
		}
		if failures++; failures >= c.retry.Attempts {
			return fmt.Errorf("following %s: %w", id, err)
		}
		if err := sleepCtx(ctx, c.retry.backoff(failures)); err != nil {
			return err
		}
	}
}

// errStreamBroken wraps a stream that ended before its end event, or could
// not be opened for a reason worth retrying.
var errStreamBroken = errors.New("the log stream broke")

type streamProgress struct {
	lastID string
	events int
}

// streamOnce reads one connection of the stream until its end event (nil),
// a break (errStreamBroken) or another error.
func (c *Client) streamOnce(ctx context.Context, path string, q url.Values, lastID string, fn func(api.LogEntry) error, cfg waitConfig) (streamProgress, error) {
	var got streamProgress
	r := request{method: http.MethodGet, path: path, query: q, accept: "text/event-stream"}
	if lastID != "" {
		r.header = http.Header{"Last-Event-ID": {lastID}}
	}
	req, err := c.newRequest(ctx, r)
	if err != nil {
		return got, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return got, fmt.Errorf("%w: %v", errStreamBroken, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := apiError(response{status: resp.StatusCode, header: resp.Header, body: body})
		var ae *Error
		switch {
		case errors.As(e, &ae) && ae.Status == http.StatusBadRequest && ae.Details["parameter"] == "follow":
			return got, errNoStream
		case retryableStatus(resp.StatusCode):
			return got, fmt.Errorf("%w: %v", errStreamBroken, e)
		}
		return got, e
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return got, errNoStream
	}
	rd := bufio.NewReaderSize(resp.Body, 64<<10)
	var name, id string
	var data strings.Builder
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return got, fmt.Errorf("%w: %v", errStreamBroken, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				name = value
			case "id":
				id = value
			case "data":
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.WriteString(value)
			}
			continue
		}
		// A blank line dispatches the event.
		if name == "" && data.Len() == 0 {
			continue // a comment (keep-alive)
		}
		switch name {
		case "log":
			var e api.LogEntry
			if err := json.Unmarshal([]byte(data.String()), &e); err != nil {
				return got, fmt.Errorf("decoding a log event: %w", err)
			}
			if err := fn(e); err != nil {
				return got, err
			}
		case "status":
			var st statusEvent
			if json.Unmarshal([]byte(data.String()), &st) == nil && cfg.onStatus != nil {
				cfg.onStatus(api.Status{ID: st.TaskID, Status: st.Status, Progress: st.Progress,
					Metadata: map[string]any{"current_step": st.Step}})
			}
		case "end":
			return got, nil
		}
		if id != "" {
			got.lastID = id
		}
		got.events++
		name, id = "", ""
		data.Reset()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
