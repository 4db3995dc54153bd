package server

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/task"
)

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
