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

// checkEgress checks what a task's parameters make the server or a runner
// reach: its notify URL (--notify-allow) and its module source
// (--source-allow).
func (s *Server) checkEgress(p *task.Params) *fieldError {
	if fe := s.checkNotify(p.Notify); fe != nil {
		return fe
	}
	return s.checkSource(p)
}

// checkSource refuses a remote module source whose host the server does not
// allow (--source-allow). Local paths are the runner's to check.
func (s *Server) checkSource(p *task.Params) *fieldError {
	if p.Source == "" {
		return nil
	}
	registry := events.TerraformRegistry
	if p.EffectiveEngine() == task.EngineOpenTofu {
		registry = events.OpenTofuRegistry
	}
	if err := events.CheckSource(p.Source, registry, s.opts.SourceAllow); err != nil {
		return errField("parameters.source", "%s", err.Error())
	}
	return nil
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
