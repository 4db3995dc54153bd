package policy

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/terratask/terratask/task"
)

// TestDocCredentials: input.terratask.task.credentials names the sets a
// task uses, those it names and those attached to it (Input.CredentialSets),
// or those it names when nothing resolved them; never null.
func TestDocCredentials(t *testing.T) {
	for _, c := range []struct {
		in   task.Input
		want []string
	}{
		{task.Input{}, []string{}},
		{task.Input{Params: task.Params{Credentials: []string{"aws"}}}, []string{"aws"}},
		{task.Input{Params: task.Params{Credentials: []string{"aws"}}, CredentialSets: []string{"aws", "attached"}}, []string{"aws", "attached"}},
	} {
		doc := NewDoc(c.in, task.PolicyPrePlan, nil, time.Unix(0, 0))
		if !slices.Equal(doc.Task.Credentials, c.want) || doc.Task.Credentials == nil {
			t.Errorf("credentials of %+v = %#v, want %v", c.in, doc.Task.Credentials, c.want)
		}
	}
	set, err := Compile([]Module{mod("creds", `package creds
deny contains "no prod credentials for agents" if {
	input.terratask.key.agent != ""
	"aws-prod" in input.terratask.task.credentials
}
warn contains "no credentials" if count(input.terratask.task.credentials) == 0`)})
	if err != nil {
		t.Fatal(err)
	}
	agent := &task.KeyRef{Name: "bot", Role: "operator", Agent: "bot"}
	if got := set.Eval(context.Background(), task.PolicyPrePlan, preInput(t, task.Input{Key: agent, CredentialSets: []string{"aws-prod"}})); got.Decision != task.PolicyDeny {
		t.Errorf("an agent's task with an attached prod set: %+v", got)
	}
	if got := set.Eval(context.Background(), task.PolicyPrePlan, preInput(t, task.Input{Key: agent})); got.Decision != task.PolicyAllow || len(got.Results) != 1 {
		t.Errorf("a task without sets: %+v", got)
	}
}
