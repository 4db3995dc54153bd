package server

import (
	"reflect"
	"sort"
	"testing"

	"github.com/terratask/terratask/api"
)

// TestOpenAPIWorkspacesMatchTheCode keeps the workspace part of the
// document equal to the code.
func TestOpenAPIWorkspacesMatchTheCode(t *testing.T) {
	d := loadOpenAPI(t)
	for schema, view := range map[string]any{
		"Workspace": api.Workspace{}, "WorkspaceTask": api.WorkspaceTask{}, "WorkspaceLock": api.WorkspaceLock{},
		"WorkspaceAgents": api.WorkspaceAgents{},
	} {
		if got, want := d.properties(t, schema), jsonFields(view); !reflect.DeepEqual(got, want) {
			t.Errorf("schema %s has %v, the code %v", schema, got, want)
		}
	}
	if got, want := d.properties(t, "WorkspaceAgents"), sortedSet(workspaceFields); !reflect.DeepEqual(got, want) {
		t.Errorf("WorkspaceAgents has %v, the parser %v", got, want)
	}
	agents := d.resolve(t, map[string]any{"$ref": "#/components/schemas/WorkspaceAgents"})["properties"].(map[string]any)["agents"].(map[string]any)
	if agents["maxItems"] != float64(maxWorkspaceAgents) {
		t.Errorf("WorkspaceAgents.agents maxItems %v, want %d", agents["maxItems"], maxWorkspaceAgents)
	}
	var names []string
	for _, p := range d.operations()["GET /api/v1/workspaces"]["parameters"].([]any) {
		names = append(names, d.resolve(t, p)["name"].(string))
	}
	sort.Strings(names)
	if want := sortedSet(workspaceListParams); !reflect.DeepEqual(names, want) {
		t.Errorf("workspace list parameters %v, want %v", names, want)
	}
}
