package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func waitTerminal(t testing.TB, c *apiClient, id string, timeout time.Duration, failf func(string, ...any)) Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.status(id)
		if err != nil {
			failf("status of %s: %v", id, err)
		}
		if st.Status == "completed" || st.Status == "failed" || st.Status == "cancelled" || st.Status == "rejected" {
			return st
		}
		if time.Now().After(deadline) {
			failf("task %s still %s after %s", id, st.Status, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func messages(logs []LogEntry) string {
	var b strings.Builder
	for _, l := range logs {
		fmt.Fprintf(&b, "%s %s %s %v\n", l.Timestamp, l.Level, l.Message, l.Metadata)
	}
	return b.String()
}

// apiClient speaks to one replica's API.
type apiClient struct {
	base string
	key  string
	proc *proc
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

func (c *apiClient) do(method, path string, body, out any) (int, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "UserKey "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: decoding %q: %w", method, path, raw, err)
		}
	}
	return resp.StatusCode, resp.Header, nil
}

func (c *apiClient) create(body map[string]any) (Task, error) {
	var tk Task
	_, _, err := c.do(http.MethodPost, "/api/v1/tasks", body, &tk)
	if err == nil && (!strings.HasPrefix(tk.ID, "task-") || tk.Status != "pending") {
		err = fmt.Errorf("create returned %+v", tk)
	}
	return tk, err
}

func (c *apiClient) status(id string) (Status, error) {
	var st Status
	_, _, err := c.do(http.MethodGet, "/api/v1/tasks/"+id+"/status", nil, &st)
	return st, err
}

func (c *apiClient) get(id string) (Task, error) {
	var tk Task
	_, _, err := c.do(http.MethodGet, "/api/v1/tasks/"+id, nil, &tk)
	return tk, err
}

// logs returns all of a task's log entries, following the cursor.
func (c *apiClient) logs(id string) ([]LogEntry, error) {
	var all []LogEntry
	cursor := ""
	for {
		var out struct {
			TaskID string     `json:"task_id"`
			Logs   []LogEntry `json:"logs"`
		}
		path := "/api/v1/tasks/" + id + "/logs?limit=10000"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		_, h, err := c.do(http.MethodGet, path, nil, &out)
		if err != nil {
			return nil, err
		}
		all = append(all, out.Logs...)
		if cursor = h.Get("X-Next-Cursor"); cursor == "" {
			return all, nil
		}
	}
}

func (c *apiClient) list() ([]Task, error) {
	var ts []Task
	_, _, err := c.do(http.MethodGet, "/api/v1/tasks?limit=1000&sort=created_at&order=asc", nil, &ts)
	return ts, err
}

// Task is the Task Object as a client sees it.
type Task struct {
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	Status   string         `json:"status"`
	Progress int            `json:"progress"`
	RunnerID string         `json:"runner_id"`
	Metadata map[string]any `json:"metadata"`
	Result   *struct {
		Output map[string]any `json:"output"`
		Error  *struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
	} `json:"result"`
}

// Status is the body of the status route.
type Status struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Progress int    `json:"progress"`
	Metadata struct {
		CurrentStep    string `json:"current_step"`
		PlannedChanges int    `json:"planned_changes"`
		ChangesDone    int    `json:"changes_done"`
		Host           string `json:"host"`
	} `json:"metadata"`
}

// LogEntry is one entry of the logs route.
type LogEntry struct {
	Timestamp string         `json:"timestamp"`
	Level     string         `json:"level"`
	Message   string         `json:"message"`
	Metadata  map[string]any `json:"metadata"`
}
