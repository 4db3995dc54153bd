package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/terratask/terratask/api"
)

// The Terraform state routes (/api/v1/state/{org}/{workspace}): the HTTP
// backend Terraform uses, and what an admin reads and repairs by hand.

// State is a Terraform state document and its version number.
type State struct {
	Version int64  // the stored version (X-State-Version)
	Data    []byte // the document as Terraform wrote it; nil: no state yet
}

func statePath(org, workspace, suffix string) (string, error) {
	if org == "" || workspace == "" {
		return "", errEmptyID
	}
	return "/api/v1/state/" + seg(org) + "/" + seg(workspace) + suffix, nil
}

// GetState reads the latest state document (admin keys). A workspace
// without state yet returns a State with nil Data.
func (c *Client) GetState(ctx context.Context, org, workspace string) (State, error) {
	p, err := statePath(org, workspace, "")
	if err != nil {
		return State{}, err
	}
	return c.getState(ctx, p)
}

// GetStateVersion reads one stored version of the document (admin keys).
func (c *Client) GetStateVersion(ctx context.Context, org, workspace string, version int64) (State, error) {
	p, err := statePath(org, workspace, "/versions/"+strconv.FormatInt(version, 10))
	if err != nil {
		return State{}, err
	}
	return c.getState(ctx, p)
}

func (c *Client) getState(ctx context.Context, p string) (State, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: p, retry: true})
	if err != nil || resp.status == http.StatusNoContent {
		return State{}, err
	}
	v, _ := strconv.ParseInt(resp.header.Get("X-State-Version"), 10, 64)
	return State{Version: v, Data: resp.body}, nil
}

// PutState writes a new state document under the held lock lockID (empty
// when the workspace is not locked); admin keys. Sent once.
func (c *Client) PutState(ctx context.Context, org, workspace string, doc []byte, lockID string) (api.StateVersion, error) {
	var out api.StateVersion
	p, err := statePath(org, workspace, "")
	if err != nil {
		return out, err
	}
	var q url.Values
	if lockID != "" {
		q = url.Values{"ID": {lockID}}
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: p, query: q, body: doc, ctype: "application/json"})
	if err != nil {
		return out, err
	}
	return out, decode(resp, &out)
}

// GetStateLock reads the workspace's lock (any role).
func (c *Client) GetStateLock(ctx context.Context, org, workspace string) (api.StateLock, error) {
	var out api.StateLock
	p, err := statePath(org, workspace, "/lock")
	if err != nil {
		return out, err
	}
	_, err = c.getJSON(ctx, p, nil, &out)
	return out, err
}

// LockState takes the workspace's lock with Terraform's lock info (a JSON
// object whose "ID" names the lock); admin keys. A lock held by someone
// else is an error matching ErrLocked, with the holder's info in
// Details["lock"].
func (c *Client) LockState(ctx context.Context, org, workspace string, info json.RawMessage) error {
	p, err := statePath(org, workspace, "/lock")
	if err != nil {
		return err
	}
	if !json.Valid(info) {
		return errors.New("client: lock info is not JSON")
	}
	_, err = c.do(ctx, request{method: http.MethodPost, path: p, body: info, ctype: "application/json"})
	return err
}

// UnlockState releases the lock named by info's "ID"; admin keys. It
// returns the lock released.
func (c *Client) UnlockState(ctx context.Context, org, workspace string, info json.RawMessage) (api.StateLock, error) {
	var out api.StateLock
	p, err := statePath(org, workspace, "/lock")
	if err != nil {
		return out, err
	}
	if !json.Valid(info) {
		return out, errors.New("client: lock info is not JSON")
	}
	resp, err := c.do(ctx, request{method: http.MethodDelete, path: p, body: info, ctype: "application/json"})
	if err != nil {
		return out, err
	}
	return out, decode(resp, &out)
}

// BreakStateLock releases whatever lock is held (DELETE .../lock?force=true;
// admin keys). It returns the lock broken (Locked false: none was held).
func (c *Client) BreakStateLock(ctx context.Context, org, workspace string) (api.StateLock, error) {
	var out api.StateLock
	p, err := statePath(org, workspace, "/lock")
	if err != nil {
		return out, err
	}
	_, err = c.sendJSON(ctx, http.MethodDelete, p, url.Values{"force": {"true"}}, nil, &out)
	return out, err
}

// StateVersionPage is a page of a workspace's state versions, newest first.
type StateVersionPage struct {
	Versions []api.StateVersion
	Page
}

// ListStateVersions lists a workspace's stored versions (any role); limit
// and page as in the task lists (0: the API's defaults).
func (c *Client) ListStateVersions(ctx context.Context, org, workspace string, limit, page int) (StateVersionPage, error) {
	var out StateVersionPage
	p, err := statePath(org, workspace, "/versions")
	if err != nil {
		return out, err
	}
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if page > 0 {
		q.Set("page", strconv.Itoa(page))
	}
	resp, err := c.getJSON(ctx, p, q, &out.Versions)
	out.Page = pageOf(resp.header)
	return out, err
}
