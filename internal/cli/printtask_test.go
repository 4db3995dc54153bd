package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/task"
)

// TestPrintTaskShowsPolicy: a denied task's table names the decision and
// each rule's message, so a person sees why without --output json.
func TestPrintTaskShowsPolicy(t *testing.T) {
	var out bytes.Buffer
	o := &options{env: Env{Stdout: &out}}
	tk := api.Task{ID: "task-1", Name: "n", Status: task.StatusFailed,
		Result: &task.Result{Error: &task.Error{Code: task.CodePolicyDenied, Message: "denied by policy: too many deletes"}},
		Policy: &task.PolicyCheck{Decision: task.PolicyDeny, Stage: task.PolicyPostPlan, Results: []task.PolicyResult{
			{Policy: "limits", Version: 3, Rule: task.RuleDeny, Message: "too many deletes"},
			{Policy: "tags", Version: 1, Rule: task.RuleWarn, Message: "tag it"}}}}
	if err := o.printTask(tk, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"policy_denied: denied by policy: too many deletes", "deny (post_plan)", "limits v3: too many deletes", "tags v1: tag it"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
