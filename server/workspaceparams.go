package server

import (
	"encoding/json"

	"github.com/terratask/terratask/auth"
)

// maxWorkspaceAgents caps the agents of one workspace.
const maxWorkspaceAgents = 64

// workspaceFields are the fields of a PUT /workspaces/{workspace} body.
var workspaceFields = map[string]bool{"agents": true}

var workspaceListParams = map[string]bool{"limit": true, "page": true}

// validWorkspace reports whether name may name a workspace on the
// workspace routes: what the state routes take (1 to 128 letters, digits
// and @._:+-, not . or ..), a superset of what a task's workspace parameter
// takes.
func validWorkspace(name string) bool { return auth.ValidName(name) && name != "." && name != ".." }

// parseWorkspaceAgents decodes and validates a PUT /workspaces/{workspace}
// body: {"agents": [...]}, each an agent ID (auth.ValidName) given once, at
// most maxWorkspaceAgents; an empty list leaves the workspace unowned.
// Errors are *fieldError.
func parseWorkspaceAgents(body []byte) ([]string, error) {
	var raw map[string]json.RawMessage
	if err := decodeStrict(body, &raw); err != nil {
		return nil, errField("body", "request body must be a JSON object: %s", jsonProblem(err))
	}
	if raw == nil {
		return nil, errField("body", "request body must be a JSON object")
	}
	for _, k := range sortedKeys(raw) {
		if !workspaceFields[k] {
			name := k
			if name == "" {
				name = `""`
			}
			return nil, errField(name, "unknown field %q (allowed: agents)", k)
		}
	}
	v, ok := raw["agents"]
	if !ok || isNull(v) {
		return nil, errField("agents", "is required: the agents that may use the workspace, the owner first ([] leaves it unowned)")
	}
	var items []json.RawMessage
	if json.Unmarshal(v, &items) != nil {
		return nil, errField("agents", "must be an array of agent IDs")
	}
	if len(items) > maxWorkspaceAgents {
		return nil, errField("agents", "at most %d agents may use a workspace, got %d", maxWorkspaceAgents, len(items))
	}
	agents := make([]string, 0, len(items))
	seen := map[string]bool{}
	for i, item := range items {
		var a string
		if json.Unmarshal(item, &a) != nil {
			return nil, errField("agents", "item %d must be a string (an agent ID)", i)
		}
		if !auth.ValidName(a) {
			return nil, errField("agents", "item %d is not a valid agent ID: 1 to 128 letters, digits and @._:+-", i)
		}
		if seen[a] {
			return nil, errField("agents", "item %d repeats agent %s", i, a)
		}
		seen[a] = true
		agents = append(agents, a)
	}
	return agents, nil
}
