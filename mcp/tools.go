package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	mcpsdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/client"
	"github.com/terratask/terratask/task"
)

type tools struct {
	base    *client.Client
	maxWait time.Duration
}

// clientFor is the API client of one call: over HTTP, with the caller's
// own Authorization header.
func (t *tools) clientFor(req *mcpsdk.CallToolRequest) *client.Client {
	if req != nil && req.Extra != nil && req.Extra.Header != nil {
		if h := req.Extra.Header.Get("Authorization"); h != "" {
			return t.base.With(client.WithAuthorization(h))
		}
	}
	return t.base
}

// toolError is an API error as the agent reads it.
func toolError(err error) error {
	var e *client.Error
	if errors.As(err, &e) {
		msg := fmt.Sprintf("%s: %s", e.Code, e.Message)
		if len(e.Details) > 0 {
			b, _ := json.Marshal(e.Details)
			msg += " (details: " + string(b) + ")"
		}
		return errors.New(msg)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return errors.New("the call was cancelled or timed out")
	}
	return fmt.Errorf("calling the terratask API: %v", err)
}

func readOnly(title string) *mcpsdk.ToolAnnotations {
	return &mcpsdk.ToolAnnotations{Title: title, ReadOnlyHint: true, IdempotentHint: true}
}

type taskID struct {
	TaskID string `json:"task_id" jsonschema:"the task's ID, task-..."`
}

type createInput struct {
	Name           string         `json:"name" jsonschema:"a short name for the task"`
	Description    string         `json:"description,omitempty" jsonschema:"what the task is for"`
	AgentID        string         `json:"agent_id" jsonschema:"your agent ID: the task is listed under it"`
	RunnerID       string         `json:"runner_id" jsonschema:"the runner that executes Terraform (list_runners shows the known ones)"`
	Metadata       map[string]any `json:"metadata,omitempty" jsonschema:"free-form metadata kept with the task: at most 64 keys of at most 128 bytes, each value at most 1024 bytes of JSON"`
	Parameters     map[string]any `json:"parameters,omitempty" jsonschema:"Terraform parameters: files ({\"main.tf\": \"...\"}), module or source; variables (object); sensitive_variables and env (secrets: never echoed); action (apply, plan or destroy); workspace; approval (none, required or destructive); timeout (e.g. 30m); any other key is an input variable"`
	IdempotencyKey string         `json:"idempotency_key,omitempty" jsonschema:"retry-safe creation: the same key and the same arguments return the task created first instead of a new one"`
}

type logsInput struct {
	TaskID string `json:"task_id" jsonschema:"the task's ID, task-..."`
	Tail   int    `json:"tail,omitempty" jsonschema:"how many of the newest entries to return (default 100, at most 2000)"`
	Level  string `json:"level,omitempty" jsonschema:"only these levels: one or a comma list of debug, info, warn, error"`
}

type logsOutput struct {
	TaskID    string     `json:"task_id"`
	Logs      []logEntry `json:"logs"`
	Truncated bool       `json:"truncated" jsonschema:"true when older entries were left out (raise tail to see more)"`
}

type logEntry struct {
	Timestamp string         `json:"timestamp"`
	Level     string         `json:"level"`
	Message   string         `json:"message"`
	Metadata  map[string]any `json:"metadata,omitempty"`
}

type planInput struct {
	TaskID string `json:"task_id" jsonschema:"the task's ID, task-..."`
	Format string `json:"format,omitempty" jsonschema:"json (default: summary, resource changes, outputs) or text (as terraform show prints it)"`
}

type listInput struct {
	Status string `json:"status,omitempty" jsonschema:"only these statuses: one or a comma list of pending, running, waiting_approval, cancelling, completed, failed, cancelled, rejected"`
	Agent  string `json:"agent,omitempty" jsonschema:"only this agent's tasks"`
	Runner string `json:"runner,omitempty" jsonschema:"only this runner's tasks"`
	Limit  int    `json:"limit,omitempty" jsonschema:"tasks per page, 1 to 1000 (default 20)"`
	Page   int    `json:"page,omitempty" jsonschema:"page number from 1"`
	Sort   string `json:"sort,omitempty" jsonschema:"created_at (default), updated_at or status"`
	Order  string `json:"order,omitempty" jsonschema:"desc (default) or asc"`
}

type listOutput struct {
	Tasks    []api.Task `json:"tasks"`
	Total    int        `json:"total"`
	NextPage int        `json:"next_page,omitempty"`
}

type waitInput struct {
	TaskID         string `json:"task_id" jsonschema:"the task's ID, task-..."`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty" jsonschema:"how long to wait at most (default 60, at most 300); call again while done is false"`
}

type waitOutput struct {
	TaskID   string      `json:"task_id"`
	Status   task.Status `json:"status"`
	Progress int         `json:"progress"`
	// Done: the task ended (completed, failed, cancelled or rejected).
	Done     bool           `json:"done"`
	TimedOut bool           `json:"timed_out"`
	Metadata map[string]any `json:"metadata,omitempty"`
	Result   *task.Result   `json:"result,omitempty"`
	// Policy is the task's latest policy check: why it was denied, or why
	// its plan waits for a person.
	Policy *task.PolicyCheck `json:"policy,omitempty"`
	Note   string            `json:"note,omitempty"`
}

type checkInput struct {
	Task  createInput    `json:"task" jsonschema:"the task exactly as you would pass it to create_task"`
	Stage string         `json:"stage,omitempty" jsonschema:"pre_plan (default): the policies that read the task itself; post_plan needs plan"`
	Plan  map[string]any `json:"plan,omitempty" jsonschema:"for post_plan: Terraform's JSON plan (terraform show -json)"`
}

type runnersOutput struct {
	Runners []api.Runner `json:"runners"`
}

func (t *tools) register(s *mcpsdk.Server) {
	mcpsdk.AddTool(s, &mcpsdk.Tool{
		Name: "create_task",
		Description: "Create a Terraform task on a runner; it starts at once (status pending, then running). " +
			"Returns the task; follow it with wait_for_task. A task whose parameters.approval is \"required\" (or " +
			"\"destructive\" and its plan deletes or replaces something) stops at status waiting_approval after planning " +
			"and waits for a person to approve or reject the plan: you, the agent, never approve it and have no tool to. " +
			"Put secrets in parameters.sensitive_variables or parameters.env only.",
		Annotations: &mcpsdk.ToolAnnotations{Title: "Create task", IdempotentHint: false},
	}, t.createTask)
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "get_task", Annotations: readOnly("Get task"),
		Description: "Read a task: status, progress, timestamps, metadata and, once it ended, its result (Terraform outputs, or the error with diagnostics)."}, t.getTask)
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "get_task_status", Annotations: readOnly("Get task status"),
		Description: "Read a task's live status: status, progress 0-100, current step, steps completed of total, planned resource changes and changes done, and what a pending task waits for."}, t.getStatus)
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "get_task_logs", Annotations: readOnly("Get task logs"),
		Description: "Read the newest log entries of a task (tail, default 100), oldest first, optionally only some levels (e.g. \"warn,error\"). Entries carry the step and the resource address in metadata."}, t.getLogs)
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "get_task_plan", Annotations: readOnly("Get task plan"),
		Description: "Read a task's saved Terraform plan: what it would add, change, replace or destroy (sensitive values read \"(sensitive)\"). A task in waiting_approval waits for a person to review this plan; you cannot approve it."}, t.getPlan)
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "list_tasks", Annotations: readOnly("List tasks"),
		Description: "List tasks of your org (those your key may see), newest first, with filters (status, agent, runner), sort and paging."}, t.listTasks)
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "wait_for_task", Annotations: readOnly("Wait for task"),
		Description: "Wait until a task ends, for at most timeout_seconds (default 60, at most 300), and return its status and progress; done is true once it completed, failed, was cancelled or rejected (with the result), timed_out when the wait ran out first: call again. It returns at once when the task waits for approval: only a person can approve or reject it."}, t.waitForTask)
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "cancel_task",
		Description: "Cancel a task: Terraform stops gracefully (its state lock is released) and the task ends cancelled; the answer may say cancelling while it stops. A task that already ended cannot be cancelled.",
		Annotations: &mcpsdk.ToolAnnotations{Title: "Cancel task", DestructiveHint: ptr(true), IdempotentHint: true}}, t.cancelTask)
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "check_policies", Annotations: readOnly("Check policies"),
		Description: "Evaluate your org's policies for a task without creating it (a dry run): decision allow, require_approval (its plan will wait for a person), deny (create_task would fail with policy_denied) or error, with each rule's message. Stage pre_plan checks the task itself; post_plan also needs the plan's JSON."}, t.checkPolicies)
	mcpsdk.AddTool(s, &mcpsdk.Tool{Name: "list_runners", Annotations: readOnly("List runners"),
		Description: "List the runners your org's tasks name, with liveness: online or offline, last seen, worker count and tasks by status."}, t.listRunners)
}

func ptr[T any](v T) *T { return &v }

func (t *tools) createTask(ctx context.Context, req *mcpsdk.CallToolRequest, in createInput) (*mcpsdk.CallToolResult, any, error) {
	var opts []client.CreateOption
	if in.IdempotencyKey != "" {
		opts = append(opts, client.IdempotencyKey(in.IdempotencyKey))
	}
	tk, err := t.clientFor(req).CreateTask(ctx, api.CreateTask{Name: in.Name, Description: in.Description, AgentID: in.AgentID,
		RunnerID: in.RunnerID, Metadata: in.Metadata, Parameters: in.Parameters}, opts...)
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, tk, nil
}

func (t *tools) checkPolicies(ctx context.Context, req *mcpsdk.CallToolRequest, in checkInput) (*mcpsdk.CallToolResult, any, error) {
	stage := in.Stage
	if stage == "" {
		stage = task.PolicyPrePlan
	}
	body, err := json.Marshal(api.CreateTask{Name: in.Task.Name, Description: in.Task.Description, AgentID: in.Task.AgentID,
		RunnerID: in.Task.RunnerID, Metadata: in.Task.Metadata, Parameters: in.Task.Parameters})
	if err != nil {
		return nil, nil, err
	}
	r := api.EvaluatePolicyRequest{Stage: stage, Task: body}
	if in.Plan != nil {
		if r.Plan, err = json.Marshal(in.Plan); err != nil {
			return nil, nil, err
		}
	}
	out, err := t.clientFor(req).EvaluatePolicies(ctx, r)
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, out, nil
}

func (t *tools) getTask(ctx context.Context, req *mcpsdk.CallToolRequest, in taskID) (*mcpsdk.CallToolResult, any, error) {
	tk, err := t.clientFor(req).GetTask(ctx, in.TaskID)
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, tk, nil
}

func (t *tools) getStatus(ctx context.Context, req *mcpsdk.CallToolRequest, in taskID) (*mcpsdk.CallToolResult, any, error) {
	st, err := t.clientFor(req).GetStatus(ctx, in.TaskID)
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, st, nil
}

func (t *tools) getLogs(ctx context.Context, req *mcpsdk.CallToolRequest, in logsInput) (*mcpsdk.CallToolResult, any, error) {
	tail := in.Tail
	if tail <= 0 {
		tail = 100
	}
	tail = min(tail, 2000)
	var levels []task.Level
	for _, l := range strings.Split(in.Level, ",") {
		if l = strings.TrimSpace(l); l != "" {
			levels = append(levels, task.Level(l))
		}
	}
	c := t.clientFor(req)
	out := logsOutput{TaskID: in.TaskID, Logs: []logEntry{}}
	cursor := ""
	for {
		page, err := c.GetLogs(ctx, in.TaskID, client.LogOptions{Levels: levels, Cursor: cursor, Limit: 10000})
		if err != nil {
			return nil, nil, toolError(err)
		}
		for _, e := range page.Logs.Logs {
			le := logEntry{Timestamp: e.Timestamp, Level: string(e.Level), Message: e.Message}
			_ = json.Unmarshal(e.Metadata, &le.Metadata)
			out.Logs = append(out.Logs, le)
		}
		if n := len(out.Logs); n > tail {
			out.Logs, out.Truncated = append([]logEntry(nil), out.Logs[n-tail:]...), true
		}
		if cursor = page.NextCursor; cursor == "" {
			return nil, out, nil
		}
	}
}

func (t *tools) getPlan(ctx context.Context, req *mcpsdk.CallToolRequest, in planInput) (*mcpsdk.CallToolResult, any, error) {
	c := t.clientFor(req)
	if in.Format == "text" {
		text, err := c.GetPlanText(ctx, in.TaskID)
		if err != nil {
			return nil, nil, toolError(err)
		}
		return &mcpsdk.CallToolResult{Content: []mcpsdk.Content{&mcpsdk.TextContent{Text: text}}}, nil, nil
	}
	plan, err := c.GetPlan(ctx, in.TaskID)
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, plan, nil
}

func (t *tools) listTasks(ctx context.Context, req *mcpsdk.CallToolRequest, in listInput) (*mcpsdk.CallToolResult, any, error) {
	lo := client.ListOptions{Agent: in.Agent, Runner: in.Runner, Limit: in.Limit, Page: in.Page, Sort: in.Sort, Order: in.Order}
	if lo.Limit == 0 {
		lo.Limit = 20
	}
	for _, s := range strings.Split(in.Status, ",") {
		if s = strings.TrimSpace(s); s != "" {
			lo.Status = append(lo.Status, task.Status(s))
		}
	}
	page, err := t.clientFor(req).ListTasks(ctx, lo)
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, listOutput{Tasks: page.Tasks, Total: page.Total, NextPage: page.Next}, nil
}

func (t *tools) waitForTask(ctx context.Context, req *mcpsdk.CallToolRequest, in waitInput) (*mcpsdk.CallToolResult, any, error) {
	d := time.Duration(in.TimeoutSeconds) * time.Second
	if d <= 0 {
		d = time.Minute
	}
	d = min(d, t.maxWait)
	c := t.clientFor(req)
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last api.Status
	var token any
	if req != nil && req.Params != nil {
		token = req.Params.GetProgressToken()
	}
	_, err := c.Wait(wctx, in.TaskID, client.OnStatus(func(st api.Status) {
		last = st
		if token != nil && req.Session != nil {
			_ = req.Session.NotifyProgress(ctx, &mcpsdk.ProgressNotificationParams{ProgressToken: token,
				Progress: float64(st.Progress), Total: 100, Message: string(st.Status)})
		}
		if st.Status == task.StatusWaitingApproval {
			cancel() // only a person moves it on: say so now
		}
	}))
	out := waitOutput{TaskID: in.TaskID, Status: last.Status, Progress: last.Progress, Metadata: last.Metadata}
	switch {
	case err == nil:
		tk, gerr := c.GetTask(ctx, in.TaskID)
		if gerr != nil {
			return nil, nil, toolError(gerr)
		}
		out.Status, out.Progress, out.Done, out.Result, out.Policy = tk.Status, tk.Progress, true, tk.Result, tk.Policy
		if tk.Result != nil && tk.Result.Error != nil && tk.Result.Error.Code == task.CodePolicyDenied {
			out.Note = "your org's policies denied the task (policy.results say which and why); nothing was applied. Change the task so the deny rules no longer match (check_policies tries a task without creating it), then create it again."
		}
	case last.Status == task.StatusWaitingApproval:
		out.Note = "the task waits for a person to approve or reject its plan (get_task_plan shows it); you cannot approve it. Wait again later, or cancel it."
		if tk, gerr := c.GetTask(ctx, in.TaskID); gerr == nil && tk.Policy != nil && tk.Policy.Decision == task.PolicyRequireApproval {
			out.Policy = tk.Policy
			out.Note = "a policy of your org requires a person's approval of this plan (policy.results say why); you cannot approve it. Wait again later, or cancel it."
		}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && last.ID != "":
		out.TimedOut = true
		out.Note = "still running: call wait_for_task again"
	default:
		return nil, nil, toolError(err)
	}
	return nil, out, nil
}

func (t *tools) cancelTask(ctx context.Context, req *mcpsdk.CallToolRequest, in taskID) (*mcpsdk.CallToolResult, any, error) {
	r, err := t.clientFor(req).CancelTask(ctx, in.TaskID, client.CancelOptions{})
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, r, nil
}

func (t *tools) listRunners(ctx context.Context, req *mcpsdk.CallToolRequest, _ struct{}) (*mcpsdk.CallToolResult, any, error) {
	rs, err := t.clientFor(req).ListRunners(ctx)
	if err != nil {
		return nil, nil, toolError(err)
	}
	return nil, runnersOutput{Runners: rs}, nil
}
