package server

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// runnerOnlineWithin is how recent a poll must be for a runner host to count
// as online. A healthy idle worker long-polls its queue about once a minute.
const runnerOnlineWithin = 2 * time.Minute

// describeRunner asks Temporal who polls the runner's shared queue.
func (s *Server) describeRunner(ctx context.Context, org, id string, stats []store.RunnerStat) (api.Runner, error) {
	v := api.Runner{ID: id, Status: "offline", Hosts: []api.RunnerHost{}, Tasks: map[string]int{}, Engines: []task.EngineInfo{}}
	for _, st := range stats {
		if st.RunnerID == id {
			v.Tasks[string(st.Status)] += st.Tasks
		}
	}
	resp, err := s.opts.Temporal.DescribeTaskQueue(ctx, task.RunnerTaskQueue(org, id), enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	if err != nil {
		return v, err
	}
	var last time.Time
	for _, p := range resp.GetPollers() {
		seen := p.GetLastAccessTime().AsTime().UTC()
		if seen.After(last) {
			last = seen
		}
		if time.Since(seen) <= runnerOnlineWithin {
			v.Workers++
		}
		v.Hosts = append(v.Hosts, api.RunnerHost{Identity: p.GetIdentity(), LastSeen: ts(seen), Engines: []task.EngineInfo{}})
	}
	sort.Slice(v.Hosts, func(i, j int) bool { return v.Hosts[i].Identity < v.Hosts[j].Identity })
	if !last.IsZero() {
		v.LastSeen = tsPtr(&last)
	}
	if v.Workers > 0 {
		v.Status = "online"
	}
	if err := s.addEngines(ctx, org, &v); err != nil {
		return v, err
	}
	return v, nil
}

// listRunners answers GET /api/v1/runners: every runner the org's tasks
// name, with its liveness.
func (s *Server) listRunners(c *gin.Context) {
	if !allow(c, auth.ActionRead) {
		return
	}
	if len(c.Request.URL.Query()) > 0 {
		for k := range c.Request.URL.Query() {
			badParameter(c, k, "this route takes no query parameters")
			return
		}
	}
	stats, err := s.opts.Store.RunnerStats(c.Request.Context(), principal(c).Org)
	if err != nil {
		s.opts.Logger.Error("reading runner stats", zap.Error(err))
		internal(c)
		return
	}
	var ids []string
	for _, st := range stats {
		if len(ids) == 0 || ids[len(ids)-1] != st.RunnerID {
			ids = append(ids, st.RunnerID)
		}
	}
	out := make([]api.Runner, 0, len(ids))
	for _, id := range ids {
		v, err := s.describeRunner(c.Request.Context(), principal(c).Org, id, stats)
		if err != nil {
			s.opts.Logger.Warn("describing runner queue", zap.String("runner", id), zap.Error(err))
			unavailable(c, "read the runner's queue")
			return
		}
		out = append(out, v)
	}
	c.Header("X-Total-Count", strconv.Itoa(len(out)))
	c.JSON(http.StatusOK, out)
}

// getRunner answers GET /api/v1/runners/{runnerId}. A runner nobody serves
// and no task names is still answered, offline: an agent asks before it
// creates its first task.
func (s *Server) getRunner(c *gin.Context) {
	if !allow(c, auth.ActionRead) {
		return
	}
	id := c.Param("runnerId")
	if !validID(id) {
		badParameter(c, "runnerId", "runnerId is not a valid runner ID")
		return
	}
	stats, err := s.opts.Store.RunnerStats(c.Request.Context(), principal(c).Org)
	if err != nil {
		s.opts.Logger.Error("reading runner stats", zap.Error(err))
		internal(c)
		return
	}
	v, err := s.describeRunner(c.Request.Context(), principal(c).Org, id, stats)
	if err != nil {
		s.opts.Logger.Warn("describing runner queue", zap.String("runner", id), zap.Error(err))
		unavailable(c, "read the runner's queue")
		return
	}
	c.JSON(http.StatusOK, v)
}
