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

const policiesPath = "/api/v1/policies"

// ListPolicies lists the org's current policies by name, without their
// Rego (GET /policies; an admin key).
func (c *Client) ListPolicies(ctx context.Context) ([]api.Policy, error) {
	var out api.PolicyList
	_, err := c.getJSON(ctx, policiesPath, nil, &out)
	return out.Policies, err
}

// GetPolicy reads a policy with its Rego: version, or the current one for
// 0 (GET /policies/{name}; an admin key).
func (c *Client) GetPolicy(ctx context.Context, name string, version int) (api.Policy, error) {
	var out api.Policy
	if name == "" {
		return out, errEmptyID
	}
	var q url.Values
	if version > 0 {
		q = url.Values{"version": {strconv.Itoa(version)}}
	}
	_, err := c.getJSON(ctx, policiesPath+"/"+seg(name), q, &out)
	return out, err
}

// PolicyVersions lists every version of a policy, newest first, deletions
// included, without their Rego (GET /policies/{name}/versions; an admin
// key).
func (c *Client) PolicyVersions(ctx context.Context, name string) ([]api.Policy, error) {
	var out api.PolicyVersions
	if name == "" {
		return nil, errEmptyID
	}
	_, err := c.getJSON(ctx, policiesPath+"/"+seg(name)+"/versions", nil, &out)
	return out.Versions, err
}

// PutPolicy writes a policy's next version, a Rego v1 module that must
// compile with the org's other policies (PUT /policies/{name}; an admin
// key). created reports a new policy; the same Rego and description as the
// current version change nothing and return it. A module that does not
// compile is ErrPolicyInvalid, its problems in Details["problems"]
// (Problems reads them); a policy loaded from --policy-dir is ErrConflict.
func (c *Client) PutPolicy(ctx context.Context, name, rego, description string) (api.Policy, bool, error) {
	var out api.Policy
	if name == "" {
		return out, false, errEmptyID
	}
	resp, err := c.sendJSON(ctx, http.MethodPut, policiesPath+"/"+seg(name), nil, api.PutPolicyRequest{Rego: rego, Description: description}, &out)
	return out, err == nil && resp.status == http.StatusCreated, err
}

// DeletePolicy deletes a policy: its versions stay listed, the deletion
// one of them (DELETE /policies/{name}; an admin key). A policy loaded
// from --policy-dir is ErrConflict.
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	if name == "" {
		return errEmptyID
	}
	_, err := c.sendJSON(ctx, http.MethodDelete, policiesPath+"/"+seg(name), nil, nil, nil)
	return err
}

// EvaluatePolicies is a dry run: the org's policies, with req.Policies as
// drafts in place of (or beside) them, evaluated for a task that is not
// created, at req.Stage (POST /policies/evaluate; any key of the org).
// Drafts that do not compile are ErrPolicyInvalid.
func (c *Client) EvaluatePolicies(ctx context.Context, req api.EvaluatePolicyRequest) (api.EvaluatePolicyResponse, error) {
	var out api.EvaluatePolicyResponse
	_, err := c.sendJSON(ctx, http.MethodPost, policiesPath+"/evaluate", nil, req, &out)
	return out, err
}

// ErrPolicyInvalid is a policy, or a set of them, that does not compile
// (HTTP 400, code policy_invalid); Problems lists why.
var ErrPolicyInvalid error = codeError("policy_invalid")

// Problems reads the compile problems of an ErrPolicyInvalid error, each
// with its policy, line and column; nil for other errors.
func Problems(err error) []api.PolicyProblem {
	var e *Error
	if !errors.As(err, &e) || !errors.Is(e, ErrPolicyInvalid) {
		return nil
	}
	b, err := json.Marshal(e.Details["problems"])
	if err != nil {
		return nil
	}
	var out []api.PolicyProblem
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}
