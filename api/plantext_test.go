package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/terratask/terratask/task"
)

func TestPlanTextRendersEveryAction(t *testing.T) {
	p := Plan{
		Summary: task.PlanSummary{Add: 2, Change: 1, Destroy: 2, Replace: 1, Outputs: 2},
		ResourceChanges: []ResourceChange{
			{Address: "terraform_data.new", Mode: "managed", Type: "terraform_data", Name: "new", Actions: []string{"create"},
				After: map[string]any{"id": UnknownValue, "input": "hello", "n": json.Number("3"), "list": []any{"a", true}}},
			{Address: "terraform_data.upd", Mode: "managed", Type: "terraform_data", Name: "upd", Actions: []string{"update"},
				Before: map[string]any{"id": "x", "input": "old", "secret": SensitiveValue},
				After:  map[string]any{"id": "x", "input": "new", "secret": SensitiveValue}},
			{Address: "terraform_data.rep", Mode: "managed", Type: "terraform_data", Name: "rep", Actions: []string{"delete", "create"},
				ActionReason: "replace_because_cannot_update",
				Before:       map[string]any{"id": "y", "input": 1.0}, After: map[string]any{"id": UnknownValue, "input": 2.0}},
			{Address: "terraform_data.old", Mode: "managed", Type: "terraform_data", Name: "old", Actions: []string{"delete"},
				Before: map[string]any{"id": "z", "input": map[string]any{"k": "v"}}},
			{Address: "data.terraform_remote_state.x", Mode: "data", Type: "terraform_remote_state", Name: "x", Actions: []string{"read"},
				After: map[string]any{"backend": "local"}},
			{Address: "terraform_data.same", Mode: "managed", Type: "terraform_data", Name: "same", Actions: []string{"no-op"}},
		},
		OutputChanges: map[string]OutputChange{
			"url":    {Actions: []string{"create"}, After: UnknownValue},
			"pw":     {Actions: []string{"update"}, Before: SensitiveValue, After: SensitiveValue, Sensitive: true},
			"steady": {Actions: []string{"no-op"}, Before: "a", After: "a"},
		},
	}
	text := PlanText(p)
	for _, want := range []string{
		"# terraform_data.new will be created",
		`+ resource "terraform_data" "new" {`,
		`+ input = "hello"`, "+ n     = 3", "+ id    = (known after apply)",
		"# terraform_data.upd will be updated in-place",
		`~ input = "old" -> "new"`, "# (2 unchanged attributes hidden)",
		"# terraform_data.rep must be replaced (replace because cannot update)",
		`-/+ resource "terraform_data" "rep" {`, "~ input = 1 -> 2",
		"# terraform_data.old will be destroyed", `- id    = "z" -> null`,
		"# data.terraform_remote_state.x will be read during apply", `<= data "terraform_remote_state" "x" {`,
		"Plan: 2 to add, 1 to change, 2 to destroy.",
		"Changes to Outputs:", "+ url = (known after apply)", "~ pw  = (sensitive) -> (sensitive)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the text lacks %q:\n%s", want, text)
		}
	}
	for _, not := range []string{"terraform_data.same", "steady"} {
		if strings.Contains(text, not) {
			t.Errorf("the text shows the no-op %q:\n%s", not, text)
		}
	}
	if got := PlanText(Plan{ResourceChanges: []ResourceChange{{Address: "a", Actions: []string{"no-op"}}}}); !strings.HasPrefix(got, "No changes.") {
		t.Errorf("a plan without changes: %q", got)
	}
}
