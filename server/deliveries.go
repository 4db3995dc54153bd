package server

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/store"
)

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
		out = append(out, deliveryOf(d))
	}
	if len(ds) == dq.Limit {
		c.Header("X-Next-Cursor", strconv.FormatInt(ds[len(ds)-1].ID, 10))
	}
	c.JSON(http.StatusOK, out)
}
