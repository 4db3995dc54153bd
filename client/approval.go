package client

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/terratask/terratask/api"
)

// GetPlan reads a task's saved plan as JSON (GET /tasks/{id}/plan): its
// summary, resource changes with actions and before/after, output changes
// and drift; sensitive values read "(sensitive)".
func (c *Client) GetPlan(ctx context.Context, id string) (json.RawMessage, error) {
	p, err := taskPath(id, "/plan")
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	_, err = c.getJSON(ctx, p, nil, &out)
	return out, err
}

// GetPlanText reads a task's saved plan as Terraform shows it (Accept:
// text/plain).
func (c *Client) GetPlanText(ctx context.Context, id string) (string, error) {
	p, err := taskPath(id, "/plan")
	if err != nil {
		return "", err
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: p, accept: "text/plain", retry: true})
	return string(resp.body), err
}

// review is the body of approve and reject.
type review struct {
	Comment string `json:"comment"`
}

// ApproveTask approves a waiting task's plan (PUT /tasks/{id}/approve): the
// saved plan applies. Sent once; a second decision is a conflict.
func (c *Client) ApproveTask(ctx context.Context, id, comment string) (api.Task, error) {
	return c.decide(ctx, id, "/approve", comment)
}

// RejectTask rejects a waiting task's plan (PUT /tasks/{id}/reject): the task
// ends rejected.
func (c *Client) RejectTask(ctx context.Context, id, comment string) (api.Task, error) {
	return c.decide(ctx, id, "/reject", comment)
}

func (c *Client) decide(ctx context.Context, id, verb, comment string) (api.Task, error) {
	var out api.Task
	p, err := taskPath(id, verb)
	if err != nil {
		return out, err
	}
	_, err = c.sendJSON(ctx, http.MethodPut, p, nil, review{Comment: comment}, &out)
	return out, err
}
