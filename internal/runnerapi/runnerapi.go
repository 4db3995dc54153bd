// Package runnerapi is a runner host's client of the control plane's runner
// API (server/runnerapi.go): the task logs, plans and plan files a runner
// writes, the status its janitor asks, the credential sets its steps use
// (sealed), and its host row, over HTTP with the runner's credential, so
// that the runner host needs no access to the store, which holds every
// org's data.
//
// The credential is derived from the org's key (secret.Box.RunnerCredential):
// a runner holds its org's key and nothing else to authenticate with.
package runnerapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Client calls the runner API of one terratask server (or load balancer).
type Client struct {
	base       string
	org        string
	user, pass string
	http       *http.Client
}

// New returns the client of runner runnerID of org at base (a server's base
// URL, http or https, as --server-url gives it), authenticating with box,
// which holds the org's key.
func New(base, org, runnerID string, box *secret.Box) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("the server URL %q is not an http(s) URL", base)
	}
	return &Client{
		base: strings.TrimRight(base, "/") + "/api/v1/runner", org: org,
		user: org + "/" + runnerID, pass: box.RunnerCredential(org, runnerID),
		http: &http.Client{Timeout: 2 * time.Minute},
	}, nil
}

// Error is an answer of the runner API other than a success.
type Error struct {
	Status  int
	Message string
	// Details are the error body's details (nil when it had none).
	Details map[string]any
}

func (e *Error) Error() string {
	return fmt.Sprintf("runner API: %d %s", e.Status, e.Message)
}

// do sends a request with a JSON body (nil: none) and decodes a JSON answer
// into out (nil: none expected). A 404 is store.ErrNotFound.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(c.user, c.pass)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("runner API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return store.ErrNotFound
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct {
				Message string
				Details map[string]any
			} `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		msg := http.StatusText(resp.StatusCode)
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			msg = e.Error.Message
		}
		return &Error{Status: resp.StatusCode, Message: msg, Details: e.Error.Details}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// AppendLogs appends task log entries (activities.LogSink).
func (c *Client) AppendLogs(ctx context.Context, entries []store.LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	return c.do(ctx, http.MethodPost, "/logs", entries, nil)
}

// PutPlan stores a task's reviewable plan (activities.PlanKeeper).
func (c *Client) PutPlan(ctx context.Context, p store.Plan) error {
	return c.do(ctx, http.MethodPut, "/plans/"+url.PathEscape(p.TaskID), p, nil)
}

// PutPlanFile stores a task's sealed plan file (activities.PlanKeeper).
func (c *Client) PutPlanFile(ctx context.Context, f store.PlanFile) error {
	return c.do(ctx, http.MethodPut, "/plan-files/"+url.PathEscape(f.TaskID), f, nil)
}

// GetPlanFile reads a task's sealed plan file back, or store.ErrNotFound
// (activities.PlanKeeper).
func (c *Client) GetPlanFile(ctx context.Context, _ /* the runner's own */, id string) (store.PlanFile, error) {
	var f store.PlanFile
	err := c.do(ctx, http.MethodGet, "/plan-files/"+url.PathEscape(id), nil, &f)
	return f, err
}

// TaskCredentials fetches the credential sets req names for a step of
// task req.TaskID (activities.CredentialSource): their values sealed under
// the org's key, which the runner holds. A set the server refuses (deleted,
// or its scopes no longer serve the task) is a *store.CredentialRefusedError;
// req.Org and req.RunnerID are the client's own.
func (c *Client) TaskCredentials(ctx context.Context, req store.CredentialRequest) ([]store.CredentialDelivery, error) {
	q := url.Values{"workspace": {req.Workspace}}
	if len(req.Sets) > 0 {
		q["set"] = req.Sets
	}
	var out struct {
		Sets []store.CredentialDelivery `json:"sets"`
	}
	err := c.do(ctx, http.MethodGet, "/credentials/"+url.PathEscape(req.TaskID)+"?"+q.Encode(), nil, &out)
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusForbidden {
		set, _ := apiErr.Details["set"].(string)
		scope, _ := apiErr.Details["scope"].(string)
		value, _ := apiErr.Details["value"].(string)
		if set != "" {
			return nil, &store.CredentialRefusedError{Set: set, Scope: scope, Value: value}
		}
	}
	if err != nil {
		return nil, err
	}
	return out.Sets, nil
}

// TaskToken mints the OIDC token of a step of task req.TaskID for its
// credential set req.Set (activities.TokenSource). A set the server refuses
// is a *store.CredentialRefusedError, a server without --oidc-issuer
// store.ErrNoOIDCIssuer, a set without oidc store.ErrNotOIDCSet; req.Org,
// req.RunnerID and req.Key are the server's to know.
func (c *Client) TaskToken(ctx context.Context, req store.TokenRequest) (string, time.Time, error) {
	body := map[string]any{"set": req.Set, "phase": req.Phase, "workspace": req.Workspace, "ttl_seconds": int64(req.TTL / time.Second)}
	var out struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	err := c.do(ctx, http.MethodPost, "/tokens/"+url.PathEscape(req.TaskID), body, &out)
	var apiErr *Error
	if errors.As(err, &apiErr) {
		set, _ := apiErr.Details["set"].(string)
		switch {
		case apiErr.Status == http.StatusForbidden && set != "":
			scope, _ := apiErr.Details["scope"].(string)
			value, _ := apiErr.Details["value"].(string)
			return "", time.Time{}, &store.CredentialRefusedError{Set: set, Scope: scope, Value: value}
		case apiErr.Status == http.StatusNotImplemented:
			return "", time.Time{}, store.ErrNoOIDCIssuer
		case apiErr.Status == http.StatusConflict && set != "":
			return "", time.Time{}, fmt.Errorf("credential set %s: %w", set, store.ErrNotOIDCSet)
		}
	}
	if err != nil {
		return "", time.Time{}, err
	}
	return out.Token, out.ExpiresAt, nil
}

// PutRunnerHost publishes the host's row.
func (c *Client) PutRunnerHost(ctx context.Context, h store.RunnerHost) error {
	return c.do(ctx, http.MethodPut, "/hosts/"+url.PathEscape(h.HostID), h, nil)
}

// TaskEnded reports whether task id has ended, or is not the runner's to
// ask about (its janitor may then remove what the task left).
func (c *Client) TaskEnded(ctx context.Context, _ /* the runner's own */, id string) (bool, error) {
	var st struct {
		Status string `json:"status"`
	}
	err := c.do(ctx, http.MethodGet, "/tasks/"+url.PathEscape(id), nil, &st)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return task.Status(st.Status).Terminal(), nil
}

// Check asks the runner API whether it takes the runner's credential: an
// org key that is not the org's (or a wrong --org) is refused at once,
// rather than at every write.
func (c *Client) Check(ctx context.Context) error {
	err := c.do(ctx, http.MethodGet, "/tasks/task-credential-check", nil, nil)
	var apiErr *Error
	switch {
	case err == nil, errors.Is(err, store.ErrNotFound):
		return nil
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized:
		return fmt.Errorf("the server's runner API refuses this runner's credential: the key is not org %s's "+
			"(print it with `terratask keys org --org %s` where the secret key is)", c.org, c.org)
	}
	return err
}
