package client

import (
	"context"
	"fmt"
	"net/http"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// Metrics reads GET /metrics: the server's Prometheus metrics in text
// format (404 when the server serves them on --metrics-address).
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/metrics", accept: "text/plain", retry: true})
	return resp.body, err
}

// DecodePayloads sends Temporal payloads to the server's codec (POST
// /api/v1/codec/decode; an admin key) and returns them decrypted: what a
// Temporal Web UI or `temporal workflow show --codec-endpoint` asks.
func (c *Client) DecodePayloads(ctx context.Context, payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return c.codec(ctx, "/api/v1/codec/decode", payloads)
}

// EncodePayloads encrypts Temporal payloads with the server's codec (POST
// /api/v1/codec/encode; an admin key).
func (c *Client) EncodePayloads(ctx context.Context, payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return c.codec(ctx, "/api/v1/codec/encode", payloads)
}

func (c *Client) codec(ctx context.Context, path string, payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: payloads})
	if err != nil {
		return nil, fmt.Errorf("encoding the payloads: %w", err)
	}
	// The codec is a pure function of its input: safe to repeat.
	resp, err := c.do(ctx, request{method: http.MethodPost, path: path, body: body, ctype: "application/json", retry: true})
	if err != nil {
		return nil, err
	}
	var out commonpb.Payloads
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(resp.body, &out); err != nil {
		return nil, fmt.Errorf("decoding the answer (HTTP %d): %w", resp.status, err)
	}
	return out.Payloads, nil
}
