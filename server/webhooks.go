package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
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
	if !requireJSON(c) {
		return
	}
	body, ok := readBody(c, 64<<10)
	if !ok {
		return
	}
	req, err := parseWebhook(body)
	if err != nil {
		var fe *fieldError
		errors.As(err, &fe)
		badField(c, fe.Field, fe.Error())
		return
	}
	if fe := s.checkWebhookURL(c.Request.Context(), req.URL); fe != nil {
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
	hook := store.Webhook{ID: task.RandomID("wh-"), Org: p.Org, URL: req.URL, Events: req.Events, AgentID: req.Agent,
		RunnerID: req.Runner, CreatedAt: time.Now().UTC(), CreatedBy: p.Name}
	view := webhookView(hook)
	ping, err := events.Ping("evt-ping-"+hook.ID, view, hook.CreatedAt)
	if err != nil {
		internal(c)
		return
	}
	out := s.opts.Sender.Send(c.Request.Context(), events.Message{URL: hook.URL, Secret: []byte(req.Secret), Type: task.EventPing,
		ID: "evt-ping-" + hook.ID, Body: ping})
	if !out.Delivered() {
		// The receiver's status code, never its answer: the server must
		// not read internal pages out for a tenant.
		details := map[string]any{detailField: "url", "status_code": out.StatusCode}
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

// checkWebhookURL refuses a webhook URL whose host is, or resolves to, an
// internal address the server does not reach (--webhook-allow). The ping
// checks again, on the address it connects to.
func (s *Server) checkWebhookURL(ctx context.Context, raw string) *fieldError {
	u, err := events.CheckURL(raw)
	if err != nil {
		return errField("url", "%s", err.Error())
	}
	if err := s.hookGuard.Check(ctx, u); err != nil {
		return errField("url", "%s", err.Error())
	}
	return nil
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
