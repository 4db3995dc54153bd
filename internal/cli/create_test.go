package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestCreateBody: the -f body with the flags laid over it.
func TestCreateBody(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.tf")
	if err := os.WriteFile(main, []byte(`resource "terraform_data" "x" {}`), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &options{env: Env{}}
	var f createFlags
	cmd := o.createCommandWith(&f)
	stdin := strings.NewReader(`{"name":"from file","agent_id":"agent-1","parameters":{"parallelism":12345678901234567890,"variables":{"a":"1"}},"metadata":{"k":"v"}}`)
	if err := cmd.ParseFlags([]string{"-f", "-", "--runner", "eu", "--var", "b=2", "--file", main, "--file", "other.tf=" + main,
		"--metadata", "via=cli", "--action", "plan", "--param", `targets=["terraform_data.x"]`}); err != nil {
		t.Fatal(err)
	}
	b, err := f.body(cmd, stdin)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"name": "from file", "agent_id": "agent-1", "runner_id": "eu",
		"metadata": map[string]any{"k": "v", "via": "cli"},
		"parameters": map[string]any{
			"parallelism": json.Number("12345678901234567890"), // as written
			"variables":   map[string]any{"a": "1", "b": "2"},
			"files":       map[string]any{"main.tf": `resource "terraform_data" "x" {}`, "other.tf": `resource "terraform_data" "x" {}`},
			"action":      "plan",
			"targets":     []any{"terraform_data.x"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("body\n%v\nwant\n%v", got, want)
	}

	// Defaults, and the usage errors.
	f = createFlags{}
	cmd = o.createCommandWith(&f)
	_ = cmd.ParseFlags([]string{"--name", "n"})
	b, err = f.body(cmd, nil)
	if err != nil || string(b) != `{"agent_id":"cli","name":"n","runner_id":"local"}` {
		t.Fatalf("%s %v", b, err)
	}
	for _, bad := range [][]string{{"--var", "novalue"}, {"--param", "x=notjson"}} {
		f = createFlags{}
		cmd = o.createCommandWith(&f)
		_ = cmd.ParseFlags(append([]string{"--name", "n"}, bad...))
		if _, err := f.body(cmd, nil); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}
