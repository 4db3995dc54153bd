package server

import (
	"errors"
	"testing"

	"github.com/terratask/terratask/auth"
)

// FuzzParseWorkspaceAgents: a PUT /workspaces/{workspace} body gives at most
// maxWorkspaceAgents valid agent IDs, each once, or a field error; never a
// panic.
func FuzzParseWorkspaceAgents(f *testing.F) {
	for _, s := range []string{
		`{"agents":["agent-1","agent-2"]}`, `{"agents":[]}`, `{"agents":null}`, `{}`, `[]`, `{`, `null`, `{"":1}`,
		`{"agents":["a","a"]}`, `{"agents":[1]}`, `{"agents":["a b"]}`, `{"agents":["a"],"owner":"b"}`, `{"agents":["a"]} {}`,
		`{"agents":["` + string(make([]byte, 129)) + `"]}`, `{"agents":"a"}`, `{"agents":{"a":1}}`, `{"agents":["\u0000"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		agents, err := parseWorkspaceAgents(body)
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) || fe.Field == "" || fe.Message == "" {
				t.Fatalf("error is not a field error: %v", err)
			}
			if agents != nil {
				t.Fatalf("agents %v with an error", agents)
			}
			return
		}
		if agents == nil || len(agents) > maxWorkspaceAgents {
			t.Fatalf("accepted %d agents (%v)", len(agents), agents == nil)
		}
		seen := map[string]bool{}
		for _, a := range agents {
			if !auth.ValidName(a) || seen[a] {
				t.Fatalf("accepted agent %q (repeated: %v)", a, seen[a])
			}
			seen[a] = true
		}
	})
}
