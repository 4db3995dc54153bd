package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
	"github.com/terratask/terratask/taskstart"
)

// inputOf is the input of a task the caller creates from req, as a create
// and a schedule's template make it; the caller sets its ID and times.
func (s *Server) inputOf(p auth.Principal, req *createRequest) task.Input {
	return task.Input{
		Name: req.Name, Description: req.Description, AgentID: req.AgentID, RunnerID: req.RunnerID,
		Org: p.Org, Metadata: req.Metadata, CreatedBy: p.Name, Params: req.Params, CredentialSets: req.CredentialSets,
		Key:        &task.KeyRef{Name: p.Name, Role: string(p.Role), Agent: p.Agent},
		RunnerWait: task.Duration(s.opts.RunnerWait), ApprovalWait: task.Duration(s.opts.ApprovalWait),
	}
}

// sealSecrets seals a task's secrets for its input, under its org's key:
// the org's runners open them, no other org's.
func (s *Server) sealSecrets(org string, secrets task.Secrets) (string, error) {
	if secrets.Empty() {
		return "", nil
	}
	if s.opts.Secrets == nil {
		return "", errors.New("a task has secrets but the server has no secret box")
	}
	box, err := s.opts.Secrets.Org(org)
	if err != nil {
		return "", err
	}
	sealed, err := box.Seal(secrets)
	if err != nil {
		return "", fmt.Errorf("sealing secrets: %w", err)
	}
	return sealed, nil
}

func (s *Server) createTask(c *gin.Context) {
	if !allow(c, auth.ActionCreate) {
		return
	}
	if !requireJSON(c) {
		return
	}
	idemKey, err := idempotencyKey(c.Request.Header)
	if err != nil {
		badHeader(c, HeaderIdempotencyKey, err.Error())
		return
	}
	body, ok := readBody(c, s.opts.MaxBodyBytes)
	if !ok {
		return
	}
	req, err := parseCreate(body)
	if err != nil {
		badBody(c, err)
		return
	}
	if fe := s.checkEgress(&req.Params); fe != nil {
		badField(c, fe.Field, fe.Error())
		return
	}
	p := principal(c)
	if !p.CanSeeAgent(req.AgentID) {
		fail(c, http.StatusForbidden, codeForbidden, "key "+p.Name+" may only create tasks for agent "+p.Agent, map[string]any{detailField: "agent_id"})
		return
	}
	// Full precision: the workspace queue orders tasks by creation time.
	now := time.Now().UTC()
	in := s.inputOf(p, req)
	in.ID, in.CreatedAt = task.RandomID("task-"), now
	var digest string
	var memo map[string]any
	if idemKey != "" {
		in.ID = idempotentTaskID(s.opts.IDKey, p.Org, idemKey)
		digest = requestDigest(s.opts.IDKey, body)
		memo = memoOf(digest, now)
		// A task the store knows is past its start: compare, never restart.
		if _, err := s.opts.Store.GetTask(c.Request.Context(), p.Org, in.ID); err == nil {
			s.replay(c, pendingRow(in), digest)
			return
		}
	}
	if in.Params.Workspace == "" {
		in.Params.Workspace = in.ID
	}
	// The credential sets it names, and those attached to its workspace.
	if in.CredentialSets, ok = s.resolveCredentials(c, "", in.AgentID, in.Params.Workspace, in.RunnerID, req); !ok {
		return
	}
	if in.SealedSecrets, err = s.sealSecrets(in.Org, req.Secrets); err != nil {
		s.opts.Logger.Error("starting a task", zap.Error(err))
		internal(c)
		return
	}
	// The workspace last, before anything starts: its first task's agent
	// owns it; another agent's task is refused (see workspaces.go).
	if !s.claimWorkspace(c, p, "", in.AgentID, in.Params.Workspace, in.ID, now) {
		return
	}
	opts := taskstart.Options(in)
	opts.Memo = memo
	// Where the control-plane worker shares the server's client (dev, a
	// server that runs the control plane), the start's answer carries the
	// workflow's first task to it: no trip through matching. The SDK asks
	// for it only when such a worker polls the task queue.
	opts.EnableEagerStart = true
	taskstart.Describe(&opts, in)
	if err = taskstart.Start(c.Request.Context(), s.opts.Temporal, opts, in); err != nil {
		if idemKey != "" && isAlreadyStarted(err) {
			s.replay(c, pendingRow(in), digest)
			return
		}
		s.opts.Logger.Error("starting task workflow", zap.String("task_id", in.ID), zap.Error(err))
		unavailable(c, "start the task")
		return
	}
	row := pendingRow(in)
	if in.SharesWorkspace() {
		// Queue the task on its workspace now, so tasks created one after
		// another run in that order (the workflow queues itself too, which
		// is idempotent, in case this fails).
		s.enqueueWorkspace(c.Request.Context(), in)
	}
	// The workflow indexes the task too; this insert only makes it listable
	// at once, so a failure is logged, not returned.
	if err := s.opts.Store.CreateTask(c.Request.Context(), row); err != nil {
		s.opts.Logger.Warn("indexing new task", zap.String("task_id", in.ID), zap.Error(err))
	}
	c.JSON(http.StatusOK, viewOf(row, false))
}

// loadTask returns the caller's task, writing the 404 when it is missing, of
// another org, or of an agent the caller's key is not bound to.
func (s *Server) loadTask(c *gin.Context) (store.Task, bool) {
	id := c.Param("taskId")
	p := principal(c)
	if !validID(id) {
		notFound(c, id)
		return store.Task{}, false
	}
	t, err := s.opts.Store.GetTask(c.Request.Context(), p.Org, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !p.CanSeeAgent(t.AgentID)) {
		notFound(c, id)
		return store.Task{}, false
	}
	if err != nil {
		s.opts.Logger.Error("reading task", zap.String("task_id", id), zap.Error(err))
		internal(c)
		return store.Task{}, false
	}
	return t, true
}

// liveState queries the running workflow (or reuses a recent answer no
// older than stored, the store row's update time); ok is false when the
// workflow is closed or nobody answers in time, and the store's row stands.
func (s *Server) liveState(ctx context.Context, id string, stored time.Time) (task.State, bool) {
	// A cached answer older than the store's row (a transition recorded
	// since) is not reused.
	if st, ok := s.states.get(id); ok && !st.UpdatedAt.Before(stored) {
		return st, true
	}
	return s.queryState(ctx, id)
}

// queryState asks the workflow for its state now, bypassing the cache (and
// refreshing it): the cancel path needs the answer of the moment.
func (s *Server) queryState(ctx context.Context, id string) (task.State, bool) {
	if s.opts.Temporal == nil {
		return task.State{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	v, err := s.opts.Temporal.QueryWorkflow(ctx, id, "", task.QueryState)
	if err != nil {
		var nf *serviceerror.NotFound
		if !errors.As(err, &nf) {
			s.opts.Logger.Debug("state query failed; answering from the store", zap.String("task_id", id), zap.Error(err))
		}
		return task.State{}, false
	}
	var st task.State
	if err := v.Get(&st); err != nil {
		return task.State{}, false
	}
	s.states.put(id, st)
	return st, true
}

// fresh returns the task with the live workflow state laid over it while the
// task is not terminal in the store.
func (s *Server) fresh(c *gin.Context, t store.Task) store.Task {
	if t.Status.Terminal() {
		return t
	}
	if st, ok := s.liveState(c.Request.Context(), t.ID, t.UpdatedAt); ok {
		overlay(&t, st)
	}
	return t
}

func (s *Server) getTask(c *gin.Context) {
	t, ok := s.loadTask(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, viewOf(s.fresh(c, t), true))
}

func (s *Server) getStatus(c *gin.Context) {
	t, ok := s.loadTask(c)
	if !ok {
		return
	}
	meta := map[string]any{
		"current_step":    string(t.CurrentStep),
		"steps_completed": t.StepsCompleted,
		"total_steps":     t.TotalSteps,
	}
	plan, approval := t.Plan, t.Approval
	if !t.Status.Terminal() {
		if st, ok := s.liveState(c.Request.Context(), t.ID, t.UpdatedAt); ok {
			overlay(&t, st)
			plan, approval = st.Plan, st.Approval
			meta["current_step"] = string(st.CurrentStep)
			meta["steps_completed"] = st.StepsCompleted
			meta["total_steps"] = st.TotalSteps
			meta["planned_changes"] = st.PlannedChanges
			meta["changes_done"] = st.ChangesDone
			meta["attempt"] = st.Attempt
			if st.Host != "" {
				meta["host"] = st.Host
			}
			if st.WaitingFor != "" {
				meta["waiting_for"] = st.WaitingFor
			}
		}
	}
	if t.Status.Terminal() {
		meta["current_step"] = ""
	}
	approvalMeta(meta, plan, approval, t.Status)
	if t.Policy != nil {
		meta["policy"] = t.Policy
	}
	c.JSON(http.StatusOK, api.Status{
		ID: t.ID, Status: t.Status, Progress: t.Progress, StartedAt: tsPtr(t.StartedAt),
		UpdatedAt: ts(t.UpdatedAt), Metadata: meta,
	})
}

func (s *Server) cancelTask(c *gin.Context) {
	q, ok := query(c)
	if !ok {
		return
	}
	force := false
	for k, vs := range q {
		if k != "force" || len(vs) != 1 {
			badParameter(c, k, "the only query parameter of cancel is force=true|false, given once")
			return
		}
		switch vs[0] {
		case "true", "1":
			force = true
		case "false", "0", "":
		default:
			badParameter(c, "force", "force must be true or false")
			return
		}
	}
	// The task first: a task the key may not see is a 404 whatever its role.
	t, ok := s.loadTask(c)
	if !ok {
		return
	}
	if !allow(c, auth.ActionCancel) {
		return
	}
	if force && !allow(c, auth.ActionForceCancel) {
		return
	}
	t = s.fresh(c, t)
	if t.Status.Terminal() {
		fail(c, http.StatusConflict, codeConflict, "task is already "+string(t.Status),
			map[string]any{"taskId": t.ID, "status": string(t.Status)})
		return
	}
	by := principal(c).Name
	ctx := c.Request.Context()
	req := task.CancelRequest{By: by, At: time.Now().UTC(), Force: force}
	if force {
		if t.Status != task.StatusCancelling || t.CancelledAt == nil {
			fail(c, http.StatusConflict, codeConflict, "force cancel needs a plain cancel first",
				map[string]any{"taskId": t.ID, "status": string(t.Status)})
			return
		}
		if wait := t.CancelledAt.Add(s.opts.ForceCoolOff).Sub(time.Now()); wait > 0 {
			fail(c, http.StatusConflict, codeConflict,
				fmt.Sprintf("force cancel is allowed %s after the plain cancel; retry in %s", s.opts.ForceCoolOff, wait.Round(time.Second)),
				map[string]any{"taskId": t.ID, "status": string(t.Status), "retry_after_seconds": int(wait.Seconds()) + 1})
			return
		}
		req.At = *t.CancelledAt
	}
	if err := s.opts.Temporal.SignalWorkflow(ctx, t.ID, "", task.SignalCancel, req); err != nil && !isNotFound(err) {
		s.opts.Logger.Error("signalling cancel", zap.String("task_id", t.ID), zap.Error(err))
		unavailable(c, "cancel the task")
		return
	}
	s.states.forget(t.ID)
	if !force {
		// Let the workflow take the signal before the cancellation: a query
		// answers only after the pending workflow task, so the task records
		// who cancelled it even when both would land in one workflow task.
		s.queryState(ctx, t.ID)
		if err := s.opts.Temporal.CancelWorkflow(ctx, t.ID, ""); err != nil && !isNotFound(err) {
			s.opts.Logger.Error("cancelling workflow", zap.String("task_id", t.ID), zap.Error(err))
			unavailable(c, "cancel the task")
			return
		}
	}
	c.JSON(http.StatusOK, s.awaitCancel(ctx, t, req))
}

// awaitCancel gives a quick stop a moment to finish, so the reply is usually
// the final "cancelled"; otherwise it truthfully says "cancelling".
func (s *Server) awaitCancel(ctx context.Context, t store.Task, req task.CancelRequest) api.Cancel {
	view := api.Cancel{ID: t.ID, Status: task.StatusCancelling, CancelledAt: tsPtr(&req.At), CancelledBy: req.By}
	if t.CancelledAt != nil {
		view.CancelledAt, view.CancelledBy = tsPtr(t.CancelledAt), t.CancelledBy
	}
	deadline := time.Now().Add(s.opts.CancelWait)
	for {
		st, live := s.queryState(ctx, t.ID)
		if !live {
			if row, err := s.opts.Store.GetTask(ctx, t.Org, t.ID); err == nil {
				st = task.State{Status: row.Status, CancelledAt: row.CancelledAt, CancelledBy: row.CancelledBy}
			}
		}
		if st.CancelledAt != nil {
			view.CancelledAt, view.CancelledBy = tsPtr(st.CancelledAt), st.CancelledBy
		}
		if st.Status.Terminal() {
			view.Status = st.Status
			return view
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return view
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

// enqueueWorkspace puts a new task in its workspace's queue.
func (s *Server) enqueueWorkspace(ctx context.Context, in task.Input) {
	id := task.WorkspaceQueueID(in.Org, in.Params.Workspace)
	req := task.WorkspaceRequest{TaskID: in.ID, CreatedAt: in.CreatedAt}
	_, err := s.opts.Temporal.SignalWithStartWorkflow(ctx, id, task.SignalWorkspaceAcquire, req,
		client.StartWorkflowOptions{ID: id, TaskQueue: task.ControlPlaneTaskQueue}, task.WorkspaceWorkflowType, struct{}{})
	if err != nil {
		s.opts.Logger.Warn("queueing task on its workspace", zap.String("task_id", in.ID), zap.Error(err))
	}
}
