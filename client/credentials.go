package client

import (
	"context"
	"net/http"

	"github.com/terratask/terratask/api"
)

const credentialSetsPath = "/api/v1/credential-sets"

// ListCredentialSets lists the org's credential sets by name, with the
// names of their values, never the values (GET /credential-sets; an admin
// key).
func (c *Client) ListCredentialSets(ctx context.Context) ([]api.CredentialSet, error) {
	var out api.CredentialSetList
	_, err := c.getJSON(ctx, credentialSetsPath, nil, &out)
	return out.CredentialSets, err
}

// GetCredentialSet reads a credential set: its scopes and the names of its
// values (GET /credential-sets/{name}; an admin key).
func (c *Client) GetCredentialSet(ctx context.Context, name string) (api.CredentialSet, error) {
	var out api.CredentialSet
	if name == "" {
		return out, errEmptyID
	}
	_, err := c.getJSON(ctx, credentialSetsPath+"/"+seg(name), nil, &out)
	return out, err
}

// PutCredentialSet creates or replaces a credential set (PUT
// /credential-sets/{name}; an admin key); created reports a new set. A nil
// set.Env or set.SensitiveVariables keeps the stored values; an empty map
// removes them. The values are sealed by the server and never returned.
func (c *Client) PutCredentialSet(ctx context.Context, name string, set api.PutCredentialSetRequest) (api.CredentialSet, bool, error) {
	var out api.CredentialSet
	if name == "" {
		return out, false, errEmptyID
	}
	resp, err := c.sendJSON(ctx, http.MethodPut, credentialSetsPath+"/"+seg(name), nil, set, &out)
	return out, err == nil && resp.status == http.StatusCreated, err
}

// DeleteCredentialSet deletes a credential set (DELETE
// /credential-sets/{name}; an admin key): the next step of a task that
// uses it fails.
func (c *Client) DeleteCredentialSet(ctx context.Context, name string) error {
	if name == "" {
		return errEmptyID
	}
	_, err := c.sendJSON(ctx, http.MethodDelete, credentialSetsPath+"/"+seg(name), nil, nil, nil)
	return err
}
