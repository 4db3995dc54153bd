package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/terratask/terratask/task"
)

// Client speaks terratask's API with the dev admin key.
type Client struct {
	API  string // http://host:port
	Key  string
	HTTP *http.Client
	// Requests counts the requests sent.
	Requests atomic.Int64
}

// NewClient returns a client whose connection pool fits conns concurrent
// callers.
func NewClient(api, key string, conns int) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns + 8
	tr.MaxIdleConnsPerHost = conns + 8
	return &Client{API: api, Key: key, HTTP: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

// Do sends a request and returns the status code, headers and body.
func (c *Client) Do(ctx context.Context, method, path string, body []byte) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.API+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "UserKey "+c.Key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.Requests.Add(1)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw, err
}

// TaskParams are the parts of a create request the benchmark varies.
type TaskParams struct {
	Name     string
	AgentID  string
	RunnerID string
	Files    map[string]string
	// Parallelism is Terraform's -parallelism; 0 leaves it unset.
	Parallelism int
	// Workspace is the task's workspace ("" for its own).
	Workspace string
	// Variables are input variables.
	Variables map[string]string
}

// CreateBody is the JSON body of POST /api/v1/tasks.
func CreateBody(p TaskParams) []byte {
	params := map[string]any{}
	if len(p.Files) > 0 {
		params["files"] = p.Files
	}
	if p.Parallelism > 0 {
		params["parallelism"] = p.Parallelism
	}
	if p.Workspace != "" {
		params["workspace"] = p.Workspace
	}
	if len(p.Variables) > 0 {
		vars := map[string]any{}
		for k, v := range p.Variables {
			vars[k] = v
		}
		params["variables"] = vars
	}
	b, _ := json.Marshal(map[string]any{
		"name": p.Name, "agent_id": p.AgentID, "runner_id": p.RunnerID, "parameters": params,
	})
	return b
}

// Create posts a create request and returns the new task's ID.
func (c *Client) Create(ctx context.Context, body []byte) (string, error) {
	code, _, raw, err := c.Do(ctx, http.MethodPost, "/api/v1/tasks", body)
	if err != nil {
		return "", err
	}
	var tk struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if code != http.StatusOK || json.Unmarshal(raw, &tk) != nil || tk.ID == "" {
		return "", fmt.Errorf("create: %d %s", code, raw)
	}
	return tk.ID, nil
}

// Status returns a task's status from the status route.
func (c *Client) Status(ctx context.Context, id string) (string, error) {
	code, _, raw, err := c.Do(ctx, http.MethodGet, "/api/v1/tasks/"+id+"/status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if code != http.StatusOK || json.Unmarshal(raw, &st) != nil {
		return "", fmt.Errorf("status of %s: %d %s", id, code, raw)
	}
	return st.Status, nil
}

// Terminal reports whether a status is final.
func Terminal(s string) bool { return task.Status(s).Terminal() }

// WaitTerminal polls the status route every poll until the task is terminal
// and returns its status.
func (c *Client) WaitTerminal(ctx context.Context, id string, poll time.Duration) (string, error) {
	for {
		st, err := c.Status(ctx, id)
		if err != nil {
			return "", err
		}
		if Terminal(st) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("task %s still %s: %w", id, st, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// CountAgent returns how many of an agent's tasks have one of statuses
// (comma list), from the list route's X-Total-Count.
func (c *Client) CountAgent(ctx context.Context, agent, statuses string) (int, error) {
	q := url.Values{"limit": {"1"}}
	if statuses != "" {
		q.Set("status", statuses)
	}
	code, h, raw, err := c.Do(ctx, http.MethodGet, "/api/v1/tasks/agent/"+url.PathEscape(agent)+"?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("list of agent %s: %d %s", agent, code, raw)
	}
	return strconv.Atoi(h.Get("X-Total-Count"))
}

// LogEntry is an entry of the logs route.
type LogEntry struct {
	Timestamp time.Time      `json:"timestamp"`
	Level     string         `json:"level"`
	Message   string         `json:"message"`
	Metadata  map[string]any `json:"metadata"`
}

// Logs returns every log entry of a task, following the cursor.
func (c *Client) Logs(ctx context.Context, id string) ([]LogEntry, error) {
	var all []LogEntry
	cursor := ""
	for {
		q := url.Values{"limit": {"10000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		code, h, raw, err := c.Do(ctx, http.MethodGet, "/api/v1/tasks/"+id+"/logs?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		var page struct {
			Logs []LogEntry `json:"logs"`
		}
		if code != http.StatusOK || json.Unmarshal(raw, &page) != nil {
			return nil, fmt.Errorf("logs of %s: %d %.200s", id, code, raw)
		}
		all = append(all, page.Logs...)
		if cursor = h.Get("X-Next-Cursor"); cursor == "" {
			return all, nil
		}
	}
}
