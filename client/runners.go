package client

import (
	"context"

	"github.com/terratask/terratask/api"
)

// ListRunners lists the runners the org's tasks name, with their liveness
// (GET /runners).
func (c *Client) ListRunners(ctx context.Context) ([]api.Runner, error) {
	var out []api.Runner
	_, err := c.getJSON(ctx, "/api/v1/runners", nil, &out)
	return out, err
}

// GetRunner reads one runner's liveness, even before any task names it
// (GET /runners/{id}).
func (c *Client) GetRunner(ctx context.Context, id string) (api.Runner, error) {
	var out api.Runner
	if id == "" {
		return out, errEmptyID
	}
	_, err := c.getJSON(ctx, "/api/v1/runners/"+seg(id), nil, &out)
	return out, err
}
