package policy

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/terratask/terratask/task"
)

// Doc is the "terratask" key of a policy's input: the task as its creator
// described it, and who created it. It holds no secret value: variables
// and sensitive variables by name only, env not at all.
type Doc struct {
	Stage string  `json:"stage"`
	Org   string  `json:"org"`
	Key   KeyDoc  `json:"key"`
	Task  TaskDoc `json:"task"`
	// Now is when the check ran (RFC 3339, UTC).
	Now string `json:"now"`
}

// KeyDoc is the API key that created the task.
type KeyDoc struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	Agent string `json:"agent"`
}

// TaskDoc describes the task.
type TaskDoc struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	AgentID   string         `json:"agent_id"`
	RunnerID  string         `json:"runner_id"`
	Metadata  map[string]any `json:"metadata"`
	Action    string         `json:"action"`
	Engine    string         `json:"engine"`
	Workspace string         `json:"workspace"`
	Approval  string         `json:"approval"`
	Module    string         `json:"module"`
	Source    string         `json:"source"`
	// Files are the task's inline files by name.
	Files map[string]string `json:"files"`
	// Variables are the names of its variables and sensitive variables.
	Variables []string `json:"variables"`
	// Credentials are the credential sets it uses, by name: those it
	// names and those attached to its workspace.
	Credentials []string `json:"credentials"`
	ScheduleID  string   `json:"schedule_id"`
}

// NewDoc describes task in for stage at now. sensitive are the names of
// its sensitive variables (their values never reach a policy).
func NewDoc(in task.Input, stage string, sensitive []string, now time.Time) Doc {
	p := in.Params
	vars := slices.Sorted(maps.Keys(p.Variables))
	for _, name := range sensitive {
		if !slices.Contains(vars, name) {
			vars = append(vars, name)
		}
	}
	slices.Sort(vars)
	d := Doc{
		Stage: stage,
		Org:   in.Org,
		Task: TaskDoc{
			ID:          in.ID,
			Name:        in.Name,
			AgentID:     in.AgentID,
			RunnerID:    in.RunnerID,
			Metadata:    in.Metadata,
			Action:      string(p.EffectiveAction()),
			Engine:      string(p.EffectiveEngine()),
			Workspace:   workspaceOf(in),
			Approval:    string(p.EffectiveApproval()),
			Module:      p.Module,
			Source:      p.Source,
			Files:       p.Files,
			Variables:   vars,
			Credentials: in.CredentialSetNames(),
			ScheduleID:  in.ScheduleID,
		},
		Now: now.UTC().Format(time.RFC3339),
	}
	if d.Task.Metadata == nil {
		d.Task.Metadata = map[string]any{}
	}
	if d.Task.Files == nil {
		d.Task.Files = map[string]string{}
	}
	if in.Key != nil {
		d.Key = KeyDoc{Name: in.Key.Name, Role: in.Key.Role, Agent: in.Key.Agent}
	} else {
		d.Key = KeyDoc{Name: in.CreatedBy}
	}
	return d
}

// workspaceOf is the task's workspace as its creator named it: "" for a
// task on a workspace of its own (the API names that one after the task).
func workspaceOf(in task.Input) string {
	if !in.SharesWorkspace() {
		return ""
	}
	return in.Params.Workspace
}

// PrePlanInput is the input of a pre_plan check: {"terratask": doc}.
func PrePlanInput(doc Doc) (ast.Value, error) {
	v, err := ast.InterfaceToValue(map[string]any{"terratask": toJSONValue(doc)})
	if err != nil {
		return nil, fmt.Errorf("policy: the task's input document: %w", err)
	}
	return v, nil
}

// PostPlanInput is the input of a post_plan check: Terraform's JSON plan
// (`terraform show -json`, masked) with the key "terratask" added.
func PostPlanInput(planJSON []byte, doc Doc) (ast.Value, error) {
	v, err := ast.ValueFromReader(bytes.NewReader(planJSON))
	if err != nil {
		return nil, fmt.Errorf("policy: the plan's JSON: %w", err)
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("policy: the plan's JSON is not an object")
	}
	tv, err := ast.InterfaceToValue(toJSONValue(doc))
	if err != nil {
		return nil, fmt.Errorf("policy: the task's input document: %w", err)
	}
	obj.Insert(ast.StringTerm("terratask"), ast.NewTerm(tv))
	return obj, nil
}

// toJSONValue turns doc into plain JSON values (maps, slices, strings),
// which ast.InterfaceToValue reads without reflection on struct tags.
func toJSONValue(doc Doc) map[string]any {
	files := make(map[string]any, len(doc.Task.Files))
	for k, v := range doc.Task.Files {
		files[k] = v
	}
	strs := func(xs []string) []any {
		out := make([]any, len(xs))
		for i, x := range xs {
			out[i] = x
		}
		return out
	}
	return map[string]any{
		"stage": doc.Stage,
		"org":   doc.Org,
		"key":   map[string]any{"name": doc.Key.Name, "role": doc.Key.Role, "agent": doc.Key.Agent},
		"task": map[string]any{
			"id": doc.Task.ID, "name": doc.Task.Name, "agent_id": doc.Task.AgentID, "runner_id": doc.Task.RunnerID,
			"metadata": doc.Task.Metadata, "action": doc.Task.Action, "engine": doc.Task.Engine,
			"workspace": doc.Task.Workspace, "approval": doc.Task.Approval, "module": doc.Task.Module,
			"source": doc.Task.Source, "files": files, "variables": strs(doc.Task.Variables),
			"credentials": strs(doc.Task.Credentials), "schedule_id": doc.Task.ScheduleID,
		},
		"now": doc.Now,
	}
}
