package server

import (
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

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// List paging limits.
const (
	defaultListLimit = 50
	maxListLimit     = 1000
	defaultLogLimit  = 1000
	maxLogLimit      = 10000
)

// listQuery is a parsed list request.
type listQuery struct {
	store.TaskQuery
	Page int
}

var listParams = map[string]bool{"status": true, "agent": true, "runner": true, "schedule": true, "limit": true, "page": true, "sort": true, "order": true}

// parseListQuery validates the query parameters of the three list routes.
func parseListQuery(q url.Values) (listQuery, error) {
	lq := listQuery{TaskQuery: store.TaskQuery{Sort: store.SortCreatedAt, Descending: true, Limit: defaultListLimit}, Page: 1}
	for k := range q {
		if !listParams[k] {
			return lq, errField(k, "unknown query parameter (allowed: status, agent, runner, schedule, limit, page, sort, order)")
		}
	}
	if v, ok := single(q, "status"); ok {
		for _, s := range strings.Split(v, ",") {
			st := task.Status(strings.TrimSpace(s))
			if !st.Valid() {
				return lq, errField("status", "must be one or a comma list of pending, running, cancelling, completed, failed, cancelled")
			}
			lq.Status = append(lq.Status, st)
		}
	}
	if v, ok := single(q, "agent"); ok {
		if !validID(v) {
			return lq, errField("agent", "is not a valid agent ID")
		}
		lq.AgentID = v
	}
	if v, ok := single(q, "runner"); ok {
		if !validID(v) {
			return lq, errField("runner", "is not a valid runner ID")
		}
		lq.RunnerID = v
	}
	if v, ok := single(q, "schedule"); ok {
		if !validID(v) {
			return lq, errField("schedule", "is not a valid schedule ID")
		}
		lq.ScheduleID = v
	}
	if err := parsePaging(q, &lq.Limit, &lq.Page); err != nil {
		return lq, err
	}
	if v, ok := single(q, "sort"); ok {
		switch store.SortField(v) {
		case store.SortCreatedAt, store.SortUpdatedAt, store.SortStatus:
			lq.Sort = store.SortField(v)
		default:
			return lq, errField("sort", "must be created_at, updated_at or status")
		}
	}
	if v, ok := single(q, "order"); ok {
		switch strings.ToLower(v) {
		case "asc":
			lq.Descending = false
		case "desc":
			lq.Descending = true
		default:
			return lq, errField("order", "must be asc or desc")
		}
	}
	for k, vs := range q {
		if len(vs) > 1 {
			return lq, errField(k, "may be given once")
		}
	}
	lq.Offset = (lq.Page - 1) * lq.Limit
	return lq, nil
}

// parsePaging reads the limit and page parameters of a list route into
// limit and page, which hold their defaults.
func parsePaging(q url.Values, limit, page *int) error {
	if v, ok := single(q, "limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return errField("limit", "must be an integer from 1 to %d", maxListLimit)
		}
		*limit = n
	}
	if v, ok := single(q, "page"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			return errField("page", "must be an integer from 1")
		}
		*page = n
	}
	return nil
}

func single(q url.Values, k string) (string, bool) {
	vs, ok := q[k]
	if !ok || len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// query parses the request's query string; a malformed one (a bad percent
// escape, a semicolon) is a 400 rather than silently dropped parameters.
func query(c *gin.Context) (url.Values, bool) {
	q, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		badParameter(c, "query", "query: the query string is malformed")
		return nil, false
	}
	return q, true
}

func (s *Server) listTasks(c *gin.Context) {
	q, ok := query(c)
	if !ok {
		return
	}
	lq, err := parseListQuery(q)
	if err != nil {
		var fe *fieldError
		errors.As(err, &fe)
		badParameter(c, fe.Field, fe.Error())
		return
	}
	// Path forms: /tasks/agent/{agentId} and /tasks/runner/{runnerId}.
	for param, dst := range map[string]*string{"agentId": &lq.AgentID, "runnerId": &lq.RunnerID} {
		if v := c.Param(param); v != "" {
			if !validID(v) {
				badParameter(c, param, param+": is not a valid ID")
				return
			}
			if *dst != "" && *dst != v {
				badParameter(c, param, param+": the path and the query name different IDs")
				return
			}
			*dst = v
		}
	}
	p := principal(c)
	lq.Org = p.Org
	if p.Agent != "" {
		if lq.AgentID != "" && lq.AgentID != p.Agent {
			c.Header("X-Total-Count", "0")
			c.Data(http.StatusOK, "application/json; charset=utf-8", []byte("[]"))
			return
		}
		lq.AgentID = p.Agent
	}
	tasks, total, err := s.opts.Store.ListTasks(c.Request.Context(), lq.TaskQuery)
	if err != nil {
		s.opts.Logger.Error("listing tasks", zap.Error(err))
		internal(c)
		return
	}
	c.Header("X-Total-Count", strconv.Itoa(total))
	if link := pageLinks(c.Request.URL, lq.Page, lq.Limit, total); link != "" {
		c.Header("Link", link)
	}
	// The seed answers /tasks with Task Objects (no result) and the agent
	// and runner routes with task summaries.
	if c.Param("agentId") != "" || c.Param("runnerId") != "" {
		out := make([]api.TaskSummary, 0, len(tasks))
		for _, t := range tasks {
			out = append(out, summaryOf(t))
		}
		c.JSON(http.StatusOK, out)
		return
	}
	out := make([]api.Task, 0, len(tasks))
	for _, t := range tasks {
		out = append(out, viewOf(t, false))
	}
	c.JSON(http.StatusOK, out)
}

// pageLinks builds the RFC 8288 Link header with next and prev pages.
func pageLinks(u *url.URL, page, limit, total int) string {
	var links []string
	mk := func(page int, rel string) {
		q := u.Query()
		q.Set("page", strconv.Itoa(page))
		q.Set("limit", strconv.Itoa(limit))
		links = append(links, fmt.Sprintf("<%s?%s>; rel=\"%s\"", u.Path, q.Encode(), rel))
	}
	if page*limit < total {
		mk(page+1, "next")
	}
	if page > 1 {
		mk(page-1, "prev")
	}
	return strings.Join(links, ", ")
}

var logParams = map[string]bool{"start_time": true, "end_time": true, "level": true, "limit": true, "cursor": true, "follow": true}

// parseLogQuery validates the query parameters of the logs route.
func parseLogQuery(q url.Values) (store.LogQuery, error) {
	lq := store.LogQuery{Limit: defaultLogLimit}
	for k, vs := range q {
		if !logParams[k] {
			return lq, errField(k, "unknown query parameter (allowed: start_time, end_time, level, limit, cursor, follow)")
		}
		if len(vs) > 1 {
			return lq, errField(k, "may be given once")
		}
	}
	for _, k := range []string{"start_time", "end_time"} {
		if v, ok := single(q, k); ok {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return lq, errField(k, "must be an RFC 3339 timestamp such as 2026-01-01T00:00:00Z")
			}
			t = t.UTC()
			if k == "start_time" {
				lq.Since = &t
			} else {
				lq.Until = &t
			}
		}
	}
	if lq.Since != nil && lq.Until != nil && lq.Until.Before(*lq.Since) {
		return lq, errField("end_time", "must not be before start_time")
	}
	if v, ok := single(q, "level"); ok {
		seen := map[task.Level]bool{}
		for _, s := range strings.Split(v, ",") {
			l := task.Level(strings.ToLower(strings.TrimSpace(s)))
			if l == "warning" {
				l = task.LevelWarn
			}
			switch l {
			case task.LevelDebug, task.LevelInfo, task.LevelWarn, task.LevelError:
			default:
				return lq, errField("level", "must be one or a comma list of debug, info, warn, error")
			}
			if !seen[l] {
				seen[l] = true
				lq.Levels = append(lq.Levels, l)
			}
		}
	}
	if v, ok := single(q, "limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLogLimit {
			return lq, errField("limit", "must be an integer from 1 to %d", maxLogLimit)
		}
		lq.Limit = n
	}
	if v, ok := single(q, "cursor"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return lq, errField("cursor", "must be the X-Next-Cursor value of an earlier page")
		}
		lq.AfterID = n
	}
	return lq, nil
}

func (s *Server) getLogs(c *gin.Context) {
	q, ok := query(c)
	if !ok {
		return
	}
	follow, err := wantsStream(c, q)
	if err != nil {
		var fe *fieldError
		errors.As(err, &fe)
		badParameter(c, fe.Field, fe.Error())
		return
	}
	if follow {
		s.followLogs(c, q)
		return
	}
	delete(q, "follow")
	lq, err := parseLogQuery(q)
	if err != nil {
		var fe *fieldError
		errors.As(err, &fe)
		badParameter(c, fe.Field, fe.Error())
		return
	}
	t, ok := s.loadTask(c)
	if !ok {
		return
	}
	lq.TaskID, lq.RawMetadata = t.ID, true
	entries, err := s.opts.Store.ListLogs(c.Request.Context(), lq)
	if err != nil {
		s.opts.Logger.Error("listing logs", zap.String("task_id", t.ID), zap.Error(err))
		internal(c)
		return
	}
	out := api.Logs{TaskID: t.ID, Logs: make([]api.LogEntry, 0, len(entries))}
	for _, e := range entries {
		// The stored metadata is a JSON object already: passed through.
		meta := e.MetadataJSON
		if len(meta) == 0 {
			meta = json.RawMessage(`{}`)
		}
		out.Logs = append(out.Logs, api.LogEntry{
			Timestamp: api.LogTime(e.Timestamp),
			Level:     e.Level, Message: e.Message, Metadata: meta,
		})
	}
	if len(entries) == lq.Limit {
		c.Header("X-Next-Cursor", strconv.FormatInt(entries[len(entries)-1].ID, 10))
	}
	c.JSON(http.StatusOK, out)
}
