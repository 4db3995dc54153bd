package server

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Webhook limits.
const (
	minSecretLen       = 16
	maxSecretLen       = 256
	defaultDeliveryLim = 50
	maxDeliveryLimit   = 1000
)

var (
	webhookIDPattern = regexp.MustCompile(`^wh-[a-z2-7]{26}$`)
	secretPattern    = regexp.MustCompile(`^[\x21-\x7e]+$`)
)

// webhookFields are the fields of a create body.
var webhookFields = map[string]bool{"url": true, "events": true, "agent": true, "runner": true, "secret": true}

// parseWebhook decodes and validates a POST /webhooks body. Errors are
// *fieldError; messages never echo the secret.
func parseWebhook(body []byte) (api.NewWebhook, error) {
	var raw map[string]json.RawMessage
	var w api.NewWebhook
	if err := decodeStrict(body, &raw); err != nil || raw == nil {
		return w, errField("body", "request body must be a JSON object")
	}
	for _, k := range sortedKeys(raw) {
		if !webhookFields[k] {
			name := k
			if name == "" {
				name = `""`
			}
			return w, errField(name, "unknown field %q (allowed: url, events, agent, runner, secret)", k)
		}
	}
	str := func(k string) (string, bool, error) {
		v, ok := raw[k]
		if !ok || isNull(v) {
			return "", false, nil
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", false, errField(k, "must be a string")
		}
		return s, true, nil
	}
	u, _, err := str("url")
	if err != nil {
		return w, err
	}
	if _, err := events.CheckURL(u); err != nil {
		return w, errField("url", "%s", err.Error())
	}
	w.URL = u
	if v, ok := raw["events"]; ok && !isNull(v) {
		var names []string
		if json.Unmarshal(v, &names) != nil {
			return w, errField("events", "must be an array of event types")
		}
		seen := map[task.EventType]bool{}
		for _, n := range names {
			t := task.EventType(n)
			if !t.Valid() {
				return w, errField("events", "%q is not an event type (%s)", n, eventTypeList())
			}
			if !seen[t] {
				seen[t] = true
				w.Events = append(w.Events, t)
			}
		}
	}
	for _, k := range []string{"agent", "runner"} {
		v, ok, err := str(k)
		if err != nil {
			return w, err
		}
		if ok && !validID(v) {
			return w, errField(k, "is not a valid %s ID", k)
		}
		if k == "agent" {
			w.Agent = v
		} else {
			w.Runner = v
		}
	}
	sec, ok, err := str("secret")
	if err != nil {
		return w, err
	}
	if ok && (len(sec) < minSecretLen || len(sec) > maxSecretLen || !secretPattern.MatchString(sec)) {
		return w, errField("secret", "must be %d to %d printable ASCII characters without spaces (or left out: the server generates one)", minSecretLen, maxSecretLen)
	}
	w.Secret = sec
	return w, nil
}

// newWebhookID returns "wh-" and 26 characters of base32 (130 random bits).
func newWebhookID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "wh-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// newWebhookSecret returns a generated signing secret.
func newWebhookSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b)
}

func webhookView(w store.Webhook) api.Webhook {
	evs := w.Events
	if evs == nil {
		evs = []task.EventType{}
	}
	return api.Webhook{ID: w.ID, URL: w.URL, Events: evs, Agent: w.AgentID, Runner: w.RunnerID,
		CreatedAt: api.Time(w.CreatedAt), CreatedBy: w.CreatedBy}
}

// allowWebhooks checks the caller may manage webhooks: an admin key bound
// to no agent (webhooks see every agent's events).
func allowWebhooks(c *gin.Context) bool {
	if !allow(c, auth.ActionManageWebhooks) {
		return false
	}
	if p := principal(c); p.Agent != "" {
		fail(c, http.StatusForbidden, codeForbidden, "key "+p.Name+" is bound to agent "+p.Agent+"; webhooks see every agent's events", nil)
		return false
	}
	return true
}

// createWebhook validates the body, sends the new webhook a ping, which
// must be answered with a 2xx, and stores it.
func (s *Server) createWebhook(c *gin.Context) {
	if !allowWebhooks(c) {
		return
	}
	if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mt != "application/json" {
		fail(c, http.StatusUnsupportedMediaType, codeUnsupportedMedia, "Content-Type must be application/json",
			map[string]any{detailHeader: "Content-Type"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 64<<10))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(c, http.StatusRequestEntityTooLarge, codeTooLarge, "request body exceeds 65536 bytes", map[string]any{"limit_bytes": 64 << 10})
			return
		}
		badField(c, "body", "could not read the request body")
		return
	}
	req, err := parseWebhook(body)
	if err != nil {
		var fe *fieldError
		errors.As(err, &fe)
		badField(c, fe.Field, fe.Error())
		return
	}
	if s.opts.Secrets == nil {
		s.opts.Logger.Error("creating a webhook needs the server's secret box")
		internal(c)
		return
	}
	p := principal(c)
	generated := req.Secret == ""
	if generated {
		req.Secret = newWebhookSecret()
	}
	hook := store.Webhook{ID: newWebhookID(), Org: p.Org, URL: req.URL, Events: req.Events, AgentID: req.Agent,
		RunnerID: req.Runner, CreatedAt: time.Now().UTC(), CreatedBy: p.Name}
	view := webhookView(hook)
	ping, err := events.Ping("evt-ping-"+hook.ID, view, hook.CreatedAt)
	if err != nil {
		internal(c)
		return
	}
	sender := s.opts.Sender
	if sender == nil {
		sender = events.NewSender(0)
	}
	out := sender.Send(c.Request.Context(), events.Message{URL: hook.URL, Secret: []byte(req.Secret), Type: task.EventPing,
		ID: "evt-ping-" + hook.ID, Body: ping})
	if !out.Delivered() {
		details := map[string]any{detailField: "url", "status_code": out.StatusCode}
		if out.Answer != "" {
			details["answer"] = out.Answer
		}
		badField2(c, details, fmt.Sprintf("url: the webhook's ping was not answered with a 2xx (%s); nothing was created", out.Err))
		return
	}
	hook.SealedSecret, err = s.opts.Secrets.SealBytes([]byte(req.Secret), secret.WebhookSecretContext(hook.Org, hook.ID))
	if err != nil {
		s.opts.Logger.Error("sealing a webhook secret", zap.Error(err))
		internal(c)
		return
	}
	if err := s.opts.Store.CreateWebhook(c.Request.Context(), hook); err != nil {
		s.opts.Logger.Error("storing a webhook", zap.Error(err))
		internal(c)
		return
	}
	if generated {
		view.Secret = req.Secret // shown this once
	}
	c.JSON(http.StatusOK, view)
}

// badField2 is a 400 with details of its own (which name the field).
func badField2(c *gin.Context, details map[string]any, msg string) {
	fail(c, http.StatusBadRequest, codeBadRequest, msg, details)
}

func (s *Server) listWebhooks(c *gin.Context) {
	if !allowWebhooks(c) || !noQuery(c) {
		return
	}
	hooks, err := s.opts.Store.ListWebhooks(c.Request.Context(), principal(c).Org)
	if err != nil {
		s.opts.Logger.Error("listing webhooks", zap.Error(err))
		internal(c)
		return
	}
	out := make([]api.Webhook, 0, len(hooks))
	for _, h := range hooks {
		out = append(out, webhookView(h))
	}
	c.JSON(http.StatusOK, out)
}

// noQuery answers a 400 when a route that takes no query parameters got
// one.
func noQuery(c *gin.Context) bool {
	q, ok := query(c)
	if !ok {
		return false
	}
	for k := range q {
		badParameter(c, k, k+": unknown query parameter (this route takes none)")
		return false
	}
	return true
}

// loadWebhook returns the caller's webhook, writing the 404 when it is
// missing or another org's.
func (s *Server) loadWebhook(c *gin.Context) (store.Webhook, bool) {
	id := c.Param("webhookId")
	if !webhookIDPattern.MatchString(id) {
		webhookNotFound(c, id)
		return store.Webhook{}, false
	}
	w, err := s.opts.Store.GetWebhook(c.Request.Context(), principal(c).Org, id)
	if errors.Is(err, store.ErrNotFound) {
		webhookNotFound(c, id)
		return store.Webhook{}, false
	}
	if err != nil {
		s.opts.Logger.Error("reading a webhook", zap.Error(err))
		internal(c)
		return store.Webhook{}, false
	}
	return w, true
}

func webhookNotFound(c *gin.Context, id string) {
	if len(id) > maxIDLen {
		id = id[:maxIDLen]
	}
	fail(c, http.StatusNotFound, codeNotFound, "Webhook not found", map[string]any{"webhookId": id})
}

func (s *Server) getWebhook(c *gin.Context) {
	if !allowWebhooks(c) || !noQuery(c) {
		return
	}
	if w, ok := s.loadWebhook(c); ok {
		c.JSON(http.StatusOK, webhookView(w))
	}
}

// deleteWebhook deletes a webhook and its delivery log; deliveries still
// pending for it stop.
func (s *Server) deleteWebhook(c *gin.Context) {
	if !allowWebhooks(c) || !noQuery(c) {
		return
	}
	w, ok := s.loadWebhook(c)
	if !ok {
		return
	}
	if err := s.opts.Store.DeleteWebhook(c.Request.Context(), w.Org, w.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			webhookNotFound(c, w.ID)
			return
		}
		s.opts.Logger.Error("deleting a webhook", zap.Error(err))
		internal(c)
		return
	}
	c.JSON(http.StatusOK, webhookView(w))
}

var deliveryParams = map[string]bool{"limit": true, "cursor": true, "event_id": true}

// parseDeliveryQuery validates the query of a webhook's delivery log.
func parseDeliveryQuery(q map[string][]string) (store.DeliveryQuery, error) {
	dq := store.DeliveryQuery{Limit: defaultDeliveryLim}
	for k, vs := range q {
		if !deliveryParams[k] {
			return dq, errField(k, "unknown query parameter (allowed: limit, cursor, event_id)")
		}
		if len(vs) > 1 {
			return dq, errField(k, "may be given once")
		}
	}
	if v, ok := single(q, "limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDeliveryLimit {
			return dq, errField("limit", "must be an integer from 1 to %d", maxDeliveryLimit)
		}
		dq.Limit = n
	}
	if v, ok := single(q, "cursor"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return dq, errField("cursor", "must be the X-Next-Cursor value of an earlier page")
		}
		dq.BeforeID = n
	}
	if v, ok := single(q, "event_id"); ok {
		if v == "" || len(v) > 512 || strings.ContainsAny(v, "\x00\n\r") {
			return dq, errField("event_id", "is not an event ID")
		}
		dq.EventID = v
	}
	return dq, nil
}

// listDeliveries answers a webhook's delivery attempts, newest first.
func (s *Server) listDeliveries(c *gin.Context) {
	if !allowWebhooks(c) {
		return
	}
	q, ok := query(c)
	if !ok {
		return
	}
	dq, err := parseDeliveryQuery(q)
	if err != nil {
		var fe *fieldError
		errors.As(err, &fe)
		badParameter(c, fe.Field, fe.Error())
		return
	}
	w, ok := s.loadWebhook(c)
	if !ok {
		return
	}
	dq.Org, dq.Target = w.Org, w.ID
	ds, err := s.opts.Store.ListDeliveries(c.Request.Context(), dq)
	if err != nil {
		s.opts.Logger.Error("listing deliveries", zap.Error(err))
		internal(c)
		return
	}
	out := make([]api.Delivery, 0, len(ds))
	for _, d := range ds {
		out = append(out, api.DeliveryOf(d))
	}
	if len(ds) == dq.Limit {
		c.Header("X-Next-Cursor", strconv.FormatInt(ds[len(ds)-1].ID, 10))
	}
	c.JSON(http.StatusOK, out)
}

// getSigningSecret shows an admin the secret that signs the org's notify
// deliveries (derived from the server's secret key and the org).
func (s *Server) getSigningSecret(c *gin.Context) {
	if !allowWebhooks(c) || !noQuery(c) {
		return
	}
	if s.opts.Secrets == nil {
		internal(c)
		return
	}
	org := principal(c).Org
	s.opts.Logger.Info("notify signing secret shown", zap.String("org", org), zap.String("key", principal(c).Name))
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, api.SigningSecret{Org: org, Secret: s.opts.Secrets.SigningSecret(org)})
}

// checkNotify refuses a task's notify URL whose host the server does not
// allow (--notify-allow).
func (s *Server) checkNotify(n *task.Notify) *fieldError {
	if n == nil {
		return nil
	}
	u, err := events.CheckURL(n.URL)
	if err != nil {
		return errField("parameters.notify.url", "%s", err.Error())
	}
	if s.opts.NotifyAllow.Empty() {
		return errField("parameters.notify.url", "this server allows no notify hosts (it runs without --notify-allow)")
	}
	if !s.opts.NotifyAllow.Allows(u) {
		return errField("parameters.notify.url", "the host is not one this server allows (--notify-allow: %s)", s.opts.NotifyAllow)
	}
	return nil
}
