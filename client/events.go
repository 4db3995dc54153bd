package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/task"
)

// EventOptions filter GET /events.
type EventOptions struct {
	Types  []task.EventType // empty: all
	Agent  string
	Runner string
	// Cursor: events after this one (EventPage.Next, or an event's cursor).
	// Zero: a page starts at the org's oldest event, FollowEvents at the
	// next new one.
	Cursor int64
	Limit  int // a page's size, 1..1000 (default 100)
}

func (o EventOptions) values(follow bool) url.Values {
	q := url.Values{}
	if len(o.Types) > 0 {
		s := make([]string, len(o.Types))
		for i, t := range o.Types {
			s[i] = string(t)
		}
		q.Set("type", strings.Join(s, ","))
	}
	if o.Agent != "" {
		q.Set("agent", o.Agent)
	}
	if o.Runner != "" {
		q.Set("runner", o.Runner)
	}
	if o.Cursor > 0 {
		q.Set("cursor", strconv.FormatInt(o.Cursor, 10))
	}
	if o.Limit > 0 && !follow {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if follow {
		q.Set("follow", "true")
	}
	return q
}

// EventPage is a page of the org's events, oldest first; Next continues
// after it (now, or later when more have happened).
type EventPage struct {
	Events []api.Event
	Next   int64
}

// ListEvents reads a page of the org's events (GET /events).
func (c *Client) ListEvents(ctx context.Context, o EventOptions) (EventPage, error) {
	var out EventPage
	resp, err := c.getJSON(ctx, "/api/v1/events", o.values(false), &out.Events)
	if err != nil {
		return out, err
	}
	out.Next, _ = strconv.ParseInt(resp.header.Get("X-Next-Cursor"), 10, 64)
	return out, nil
}

// FollowEvents streams the org's events (GET /events?follow=true) to fn, with
// each event's cursor, until ctx ends or fn returns an error (which it
// returns). A broken stream is resumed where it broke (Last-Event-ID), with
// the client's retry backoff.
func (c *Client) FollowEvents(ctx context.Context, o EventOptions, fn func(ev api.Event, cursor int64) error) error {
	q := o.values(true)
	last := ""
	failures := 0
	for {
		r := request{method: http.MethodGet, path: "/api/v1/events", query: q, accept: "text/event-stream"}
		if last != "" {
			r.header = http.Header{"Last-Event-ID": {last}}
		}
		n, err := c.followEventsOnce(ctx, r, &last, fn)
		var ae *Error
		var ce callbackError
		switch {
		case errors.As(err, &ce):
			return ce.err
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &ae) && !retryableStatus(ae.Status):
			return err
		}
		if n > 0 {
			failures = 0
		}
		if failures++; failures >= c.retry.Attempts {
			return fmt.Errorf("following events: %w", err)
		}
		if err := sleepCtx(ctx, c.retry.backoff(failures)); err != nil {
			return err
		}
	}
}

// callbackError carries an error of FollowEvents' callback out.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

func (c *Client) followEventsOnce(ctx context.Context, r request, last *string, fn func(api.Event, int64) error) (int, error) {
	req, err := c.newRequest(ctx, r)
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return 0, apiError(response{status: resp.StatusCode, header: resp.Header, body: body})
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return 0, &Error{Status: resp.StatusCode, Code: "bad_response", Message: "the server answered " + mt + ", not an event stream"}
	}
	rd := events.NewSSEReader(resp.Body)
	n := 0
	for {
		ev, err := rd.Next()
		if err != nil {
			return n, fmt.Errorf("the event stream broke: %w", err)
		}
		var body api.Event
		if err := json.Unmarshal(ev.Data, &body); err != nil {
			return n, fmt.Errorf("decoding an event: %w", err)
		}
		cursor, _ := strconv.ParseInt(ev.ID, 10, 64)
		if err := fn(body, cursor); err != nil {
			return n, callbackError{err}
		}
		*last = ev.ID
		n++
	}
}

// CreateWebhook subscribes a URL to the org's events (POST /webhooks, admin
// keys). The server pings the URL first; unless it answers with a 2xx, the
// answer is an *Error naming field url. Without a secret, the generated
// one is in the answer's Secret, this once.
func (c *Client) CreateWebhook(ctx context.Context, w api.NewWebhook) (api.Webhook, error) {
	var out api.Webhook
	_, err := c.sendJSON(ctx, http.MethodPost, "/api/v1/webhooks", nil, w, &out)
	return out, err
}

// ListWebhooks lists the org's webhooks, oldest first (GET /webhooks).
func (c *Client) ListWebhooks(ctx context.Context) ([]api.Webhook, error) {
	var out []api.Webhook
	_, err := c.getJSON(ctx, "/api/v1/webhooks", nil, &out)
	return out, err
}

// GetWebhook reads a webhook (GET /webhooks/{id}).
func (c *Client) GetWebhook(ctx context.Context, id string) (api.Webhook, error) {
	var out api.Webhook
	if id == "" {
		return out, errEmptyID
	}
	_, err := c.getJSON(ctx, "/api/v1/webhooks/"+seg(id), nil, &out)
	return out, err
}

// DeleteWebhook deletes a webhook and its delivery log (DELETE
// /webhooks/{id}); its pending deliveries stop.
func (c *Client) DeleteWebhook(ctx context.Context, id string) (api.Webhook, error) {
	var out api.Webhook
	if id == "" {
		return out, errEmptyID
	}
	_, err := c.sendJSON(ctx, http.MethodDelete, "/api/v1/webhooks/"+seg(id), nil, nil, &out)
	return out, err
}

// DeliveryOptions page GET /webhooks/{id}/deliveries.
type DeliveryOptions struct {
	EventID string // only this event's attempts
	Limit   int    // 1..1000 (default 50)
	Cursor  int64  // DeliveryPage.Next of the page before (older attempts)
}

// DeliveryPage is a page of delivery attempts, newest first; Next is set
// when the page is full.
type DeliveryPage struct {
	Deliveries []api.Delivery
	Next       int64
}

// ListDeliveries reads a webhook's delivery attempts (GET
// /webhooks/{id}/deliveries).
func (c *Client) ListDeliveries(ctx context.Context, id string, o DeliveryOptions) (DeliveryPage, error) {
	var out DeliveryPage
	if id == "" {
		return out, errEmptyID
	}
	q := url.Values{}
	if o.EventID != "" {
		q.Set("event_id", o.EventID)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor > 0 {
		q.Set("cursor", strconv.FormatInt(o.Cursor, 10))
	}
	resp, err := c.getJSON(ctx, "/api/v1/webhooks/"+seg(id)+"/deliveries", q, &out.Deliveries)
	if err != nil {
		return out, err
	}
	out.Next, _ = strconv.ParseInt(resp.header.Get("X-Next-Cursor"), 10, 64)
	return out, nil
}

// SigningSecret reads the secret that signs the org's notify deliveries
// (GET /webhooks/signing-secret, admin keys).
func (c *Client) SigningSecret(ctx context.Context) (api.SigningSecret, error) {
	var out api.SigningSecret
	_, err := c.getJSON(ctx, "/api/v1/webhooks/signing-secret", nil, &out)
	return out, err
}
