package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// request sends an authenticated request and decodes a JSON reply into out.
func (p *devProc) request(t testing.TB, method, path string, body any, out any) (int, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.api+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "UserKey "+p.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decoding %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, resp.Header
}

// Task is the seed's Task Object as a client sees it.
type Task struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Status      string         `json:"status"`
	Progress    int            `json:"progress"`
	CreatedAt   string         `json:"created_at"`
	UpdatedAt   string         `json:"updated_at"`
	StartedAt   *string        `json:"started_at"`
	CompletedAt *string        `json:"completed_at"`
	AgentID     string         `json:"agent_id"`
	RunnerID    string         `json:"runner_id"`
	Metadata    map[string]any `json:"metadata"`
	Result      *struct {
		Output map[string]any `json:"output"`
		Error  *struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
	} `json:"result"`
	CancelledAt     *string `json:"cancelled_at"`
	CancelledBy     string  `json:"cancelled_by"`
	ApprovedBy      string  `json:"approved_by"`
	ApprovedAt      *string `json:"approved_at"`
	RejectedBy      string  `json:"rejected_by"`
	RejectedAt      *string `json:"rejected_at"`
	ApprovalComment string  `json:"approval_comment"`
}

// Status is the body of the status route.
type Status struct {
	ID        string  `json:"id"`
	Status    string  `json:"status"`
	Progress  int     `json:"progress"`
	StartedAt *string `json:"started_at"`
	UpdatedAt string  `json:"updated_at"`
	Metadata  struct {
		CurrentStep    string `json:"current_step"`
		StepsCompleted int    `json:"steps_completed"`
		TotalSteps     int    `json:"total_steps"`
		PlannedChanges int    `json:"planned_changes"`
		ChangesDone    int    `json:"changes_done"`
		WaitingFor     string `json:"waiting_for"`
		Host           string `json:"host"`
		Attempt        int    `json:"attempt"`
		Plan           *struct {
			Add, Change, Destroy, Replace, Outputs int
		} `json:"plan"`
		ApprovalExpiresAt string `json:"approval_expires_at"`
		ApprovedBy        string `json:"approved_by"`
		RejectedBy        string `json:"rejected_by"`
		ApprovalComment   string `json:"approval_comment"`
	} `json:"metadata"`
}

// LogEntry is one entry of the logs route.
type LogEntry struct {
	Timestamp string         `json:"timestamp"`
	Level     string         `json:"level"`
	Message   string         `json:"message"`
	Metadata  map[string]any `json:"metadata"`
}

func (p *devProc) create(t testing.TB, body map[string]any) Task {
	t.Helper()
	var tk Task
	code, _ := p.request(t, http.MethodPost, "/api/v1/tasks", body, &tk)
	if code != http.StatusOK {
		t.Fatalf("create: status %d: %+v", code, tk)
	}
	if !strings.HasPrefix(tk.ID, "task-") || tk.Status != "pending" {
		t.Fatalf("create returned %+v", tk)
	}
	return tk
}

// waitStatus polls the status route until the task is terminal (or until
// done returns true), recording every status seen.
func (p *devProc) waitStatus(t testing.TB, id string, timeout time.Duration, done func(Status) bool) []Status {
	t.Helper()
	var seen []Status
	deadline := time.Now().Add(timeout)
	for {
		var st Status
		code, _ := p.request(t, http.MethodGet, "/api/v1/tasks/"+id+"/status", nil, &st)
		if code != http.StatusOK {
			t.Fatalf("status of %s: %d", id, code)
		}
		seen = append(seen, st)
		if done(st) {
			return seen
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still %s after %s; last %+v\n%s", id, st.Status, timeout, st, p.output.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func terminal(s Status) bool {
	return s.Status == "completed" || s.Status == "failed" || s.Status == "cancelled" || s.Status == "rejected"
}

func (p *devProc) logs(t testing.TB, id, query string) []LogEntry {
	t.Helper()
	var out struct {
		TaskID string     `json:"task_id"`
		Logs   []LogEntry `json:"logs"`
	}
	code, _ := p.request(t, http.MethodGet, "/api/v1/tasks/"+id+"/logs"+query, nil, &out)
	if code != http.StatusOK || out.TaskID != id {
		t.Fatalf("logs of %s: %d %+v", id, code, out)
	}
	return out.Logs
}

func (p *devProc) get(t testing.TB, id string) Task {
	t.Helper()
	var tk Task
	if code, _ := p.request(t, http.MethodGet, "/api/v1/tasks/"+id, nil, &tk); code != http.StatusOK {
		t.Fatalf("get %s: %d", id, code)
	}
	return tk
}

// waitCtx is a context for polling with a bound.
func waitCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitStatusFast polls the status route every 10 ms until the task is
// terminal, for benchmarks.
func (p *devProc) waitStatusFast(t testing.TB, id string, timeout time.Duration) Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var st Status
		if code, _ := p.request(t, http.MethodGet, "/api/v1/tasks/"+id+"/status", nil, &st); code != http.StatusOK {
			t.Fatalf("status of %s: %d", id, code)
		}
		if terminal(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s not done after %s", id, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
