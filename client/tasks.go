package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/task"
)

const tasksPath = "/api/v1/tasks"

// CreateOption configures CreateTask.
type CreateOption func(*createConfig)

type createConfig struct{ key string }

// IdempotencyKey sets the create's Idempotency-Key (1-255 printable ASCII
// characters). Without it, CreateTask generates one per call, which makes
// the call's own retries safe; give one to make retries of your own safe
// too (the same key and body return the task created first).
func IdempotencyKey(key string) CreateOption { return func(c *createConfig) { c.key = key } }

// CreateTask creates a task (POST /tasks).
func (c *Client) CreateTask(ctx context.Context, t api.CreateTask, opts ...CreateOption) (api.Task, error) {
	body, err := json.Marshal(t)
	if err != nil {
		return api.Task{}, fmt.Errorf("encoding the task: %w", err)
	}
	return c.CreateTaskJSON(ctx, body, opts...)
}

// CreateTaskJSON creates a task from a create body as JSON, sent byte for
// byte (the server compares a replayed Idempotency-Key's body by its bytes).
func (c *Client) CreateTaskJSON(ctx context.Context, body []byte, opts ...CreateOption) (api.Task, error) {
	cfg := createConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.key == "" {
		cfg.key = NewIdempotencyKey()
	}
	resp, err := c.do(ctx, request{
		method: http.MethodPost, path: tasksPath, body: body, ctype: "application/json",
		header: http.Header{"Idempotency-Key": {cfg.key}}, retry: true,
	})
	if err != nil {
		return api.Task{}, err
	}
	var out api.Task
	return out, decode(resp, &out)
}

// NewIdempotencyKey returns a random Idempotency-Key.
func NewIdempotencyKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "tt-" + hex.EncodeToString(b)
}

// ListOptions filter, sort and page the list routes. Zero values take the
// API's defaults (50 a page, page 1, newest created first).
type ListOptions struct {
	Status []task.Status
	Agent  string
	Runner string
	// Schedule lists the tasks a schedule started.
	Schedule string
	Limit    int    // 1..1000
	Page     int    // from 1
	Sort     string // created_at, updated_at or status
	Order    string // asc or desc
}

func (o ListOptions) values() url.Values {
	q := url.Values{}
	if len(o.Status) > 0 {
		s := make([]string, len(o.Status))
		for i, st := range o.Status {
			s[i] = string(st)
		}
		q.Set("status", strings.Join(s, ","))
	}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("agent", o.Agent)
	set("runner", o.Runner)
	set("schedule", o.Schedule)
	set("sort", o.Sort)
	set("order", o.Order)
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Page > 0 {
		q.Set("page", strconv.Itoa(o.Page))
	}
	return q
}

// Page is the paging of a list answer, from X-Total-Count and Link.
type Page struct {
	Total int // matching items in all pages
	Next  int // the next page's number, 0 when this is the last
	Prev  int // the previous page's number, 0 on the first
}

// TaskPage is a page of GET /tasks.
type TaskPage struct {
	Tasks []api.Task
	Page
}

// SummaryPage is a page of the agent and runner lists.
type SummaryPage struct {
	Tasks []api.TaskSummary
	Page
}

var linkRel = regexp.MustCompile(`<([^>]*)>\s*;\s*rel="(next|prev)"`)

func pageOf(h http.Header) Page {
	var p Page
	p.Total, _ = strconv.Atoi(h.Get("X-Total-Count"))
	for _, m := range linkRel.FindAllStringSubmatch(h.Get("Link"), -1) {
		u, err := url.Parse(m[1])
		if err != nil {
			continue
		}
		n, _ := strconv.Atoi(u.Query().Get("page"))
		if m[2] == "next" {
			p.Next = n
		} else {
			p.Prev = n
		}
	}
	return p
}

// ListTasks lists the org's tasks (GET /tasks).
func (c *Client) ListTasks(ctx context.Context, o ListOptions) (TaskPage, error) {
	var out TaskPage
	resp, err := c.getJSON(ctx, tasksPath, o.values(), &out.Tasks)
	out.Page = pageOf(resp.header)
	return out, err
}

// ListAgentTasks lists an agent's tasks as summaries (GET /tasks/agent/{id}).
func (c *Client) ListAgentTasks(ctx context.Context, agentID string, o ListOptions) (SummaryPage, error) {
	return c.listSummaries(ctx, "/agent/", agentID, o)
}

// ListRunnerTasks lists a runner's tasks as summaries (GET /tasks/runner/{id}).
func (c *Client) ListRunnerTasks(ctx context.Context, runnerID string, o ListOptions) (SummaryPage, error) {
	return c.listSummaries(ctx, "/runner/", runnerID, o)
}

func (c *Client) listSummaries(ctx context.Context, kind, id string, o ListOptions) (SummaryPage, error) {
	var out SummaryPage
	if id == "" {
		return out, errEmptyID
	}
	resp, err := c.getJSON(ctx, tasksPath+kind+seg(id), o.values(), &out.Tasks)
	out.Page = pageOf(resp.header)
	return out, err
}

func taskPath(id, suffix string) (string, error) {
	if id == "" {
		return "", errEmptyID
	}
	return tasksPath + "/" + seg(id) + suffix, nil
}

// GetTask reads a task with its result (GET /tasks/{id}).
func (c *Client) GetTask(ctx context.Context, id string) (api.Task, error) {
	var out api.Task
	p, err := taskPath(id, "")
	if err != nil {
		return out, err
	}
	_, err = c.getJSON(ctx, p, nil, &out)
	return out, err
}

// GetStatus reads a task's live status, progress and step (GET
// /tasks/{id}/status).
func (c *Client) GetStatus(ctx context.Context, id string) (api.Status, error) {
	var out api.Status
	p, err := taskPath(id, "/status")
	if err != nil {
		return out, err
	}
	_, err = c.getJSON(ctx, p, nil, &out)
	return out, err
}

// LogOptions filter and page GET /tasks/{id}/logs.
type LogOptions struct {
	Levels []task.Level // empty: all
	Since  string       // RFC 3339, inclusive
	Until  string       // RFC 3339, inclusive
	Limit  int          // 1..10000 (default 1000)
	Cursor string       // LogPage.NextCursor of the page before
}

func (o LogOptions) values() url.Values {
	q := url.Values{}
	if len(o.Levels) > 0 {
		s := make([]string, len(o.Levels))
		for i, l := range o.Levels {
			s[i] = string(l)
		}
		q.Set("level", strings.Join(s, ","))
	}
	if o.Since != "" {
		q.Set("start_time", o.Since)
	}
	if o.Until != "" {
		q.Set("end_time", o.Until)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	return q
}

// LogPage is a page of log entries, oldest first. NextCursor is set when the
// page is full: more entries may follow it.
type LogPage struct {
	api.Logs
	NextCursor string
}

// GetLogs reads a page of a task's log entries (GET /tasks/{id}/logs).
func (c *Client) GetLogs(ctx context.Context, id string, o LogOptions) (LogPage, error) {
	var out LogPage
	p, err := taskPath(id, "/logs")
	if err != nil {
		return out, err
	}
	resp, err := c.getJSON(ctx, p, o.values(), &out.Logs)
	out.NextCursor = resp.header.Get("X-Next-Cursor")
	return out, err
}

// CancelOptions configure CancelTask.
type CancelOptions struct {
	// Force kills Terraform's process tree (admin keys, after a plain
	// cancel and the server's cool-off).
	Force bool
}

// CancelTask cancels a task (PUT /tasks/{id}/cancel). The answer's status
// is cancelled, or cancelling while Terraform stops. It is sent once.
func (c *Client) CancelTask(ctx context.Context, id string, o CancelOptions) (api.Cancel, error) {
	var out api.Cancel
	p, err := taskPath(id, "/cancel")
	if err != nil {
		return out, err
	}
	var q url.Values
	if o.Force {
		q = url.Values{"force": {"true"}}
	}
	_, err = c.sendJSON(ctx, http.MethodPut, p, q, nil, &out)
	return out, err
}
