package client

import (
	"context"
	"errors"
	"net/http"

	"github.com/terratask/terratask/api"
)

// Health reads GET /healthz: the server process answers.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	var out api.Health
	_, err := c.getJSON(ctx, "/healthz", nil, &out)
	return out, err
}

// Ready reads GET /readyz: whether Temporal and the store answer. A server
// that is not ready returns its checks and an error matching
// ErrUnavailable; it is asked once, not retried.
func (c *Client) Ready(ctx context.Context) (api.Ready, error) {
	var out api.Ready
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/readyz"})
	var e *Error
	if err != nil && !(errors.As(err, &e) && e.Status == http.StatusServiceUnavailable) {
		return out, err
	}
	if derr := decode(resp, &out); derr != nil {
		return out, derr
	}
	return out, err
}

// OpenAPI reads the API's OpenAPI 3 document (GET /api/v1/openapi.json).
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/openapi.json", retry: true})
	return resp.body, err
}
