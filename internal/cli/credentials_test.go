package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/secret/master"
	"github.com/terratask/terratask/server"
	"github.com/terratask/terratask/store/sqlite"
)

// runCredentials runs `terratask credentials ARGS` in process against
// addr with key; it returns the exit code and output.
func runCredentials(t *testing.T, addr, key, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader(stdin), Getenv: func(k string) string {
		return map[string]string{"TERRATASK_ADDRESS": addr, "TERRATASK_API_KEY": key}[k]
	}}
	cmd := CredentialsCommand(env)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetOut(&errOut)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	var exit *ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &exit):
		if exit.Err != nil {
			errOut.WriteString("terratask: " + exit.Err.Error() + "\n")
		}
		return exit.Code, out.String(), errOut.String()
	default:
		errOut.WriteString("terratask: " + err.Error() + "\n")
		return ExitUsage, out.String(), errOut.String()
	}
}

// TestCredentialsCommand runs the commands against a real server on a
// real SQLite store: no output ever holds a value.
func TestCredentialsCommand(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys, _ := auth.NewKeyring([]auth.Key{
		{Name: "admin", Org: "o", Role: auth.RoleAdmin, Hash: auth.HashKey("admin-key")},
		{Name: "op", Org: "o", Role: auth.RoleOperator, Hash: auth.HashKey("op-key")},
	})
	box, _ := master.New(bytes.Repeat([]byte{3}, secret.KeySize))
	srv := httptest.NewServer(server.New(server.Options{Store: st, Keys: keys, Secrets: box}).Handler())
	t.Cleanup(srv.Close)
	const value = "cli-S3cret-value"
	file := filepath.Join(t.TempDir(), "aws.json")
	if err := os.WriteFile(file, []byte(`{"description":"AWS","env":{"AWS_SECRET_ACCESS_KEY":"`+value+`"},
		"sensitive_variables":{"db_password":"`+value+`","port":5432},"agents":["deploy-*"],"workspaces":["prod-*"],
		"oidc":{"provider":"aws","aws_role_arn":"arn:aws:iam::123456789012:role/tf"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	noValue := func(what string, outs ...string) {
		t.Helper()
		for _, o := range outs {
			if strings.Contains(o, value) {
				t.Fatalf("%s printed a value: %s", what, o)
			}
		}
	}

	code, out, errOut := runCredentials(t, srv.URL, "admin-key", "", "put", "aws", "--file", file, "-o", "table")
	noValue("put", out, errOut)
	if code != 0 || out != "created aws (env: AWS_SECRET_ACCESS_KEY; sensitive variables: db_password, port)\n" {
		t.Fatalf("put: %d %q %q", code, out, errOut)
	}
	// From stdin, keeping the values.
	code, out, errOut = runCredentials(t, srv.URL, "admin-key", `{"workspaces":["prod-*","staging"],"attach":true}`, "put", "aws", "-f", "-", "-o", "json")
	var set api.CredentialSet
	if code != 0 || json.Unmarshal([]byte(out), &set) != nil || !set.Attach || len(set.EnvNames) != 1 || set.OIDC != nil {
		t.Fatalf("put from stdin: %d %q %q", code, out, errOut)
	}
	code, out, errOut = runCredentials(t, srv.URL, "admin-key", "", "list", "-o", "table")
	noValue("list", out, errOut)
	if code != 0 || !strings.Contains(out, "AWS_SECRET_ACCESS_KEY") || !strings.Contains(out, "prod-*, staging") || !strings.Contains(out, "(any)") {
		t.Fatalf("list: %d %q %q", code, out, errOut)
	}
	code, out, errOut = runCredentials(t, srv.URL, "admin-key", "", "get", "aws", "-o", "table")
	noValue("get", out, errOut)
	if code != 0 || !strings.Contains(out, "Sensitive variables:") || !strings.Contains(out, "db_password, port") || !strings.Contains(out, "by admin") {
		t.Fatalf("get: %d %q %q", code, out, errOut)
	}
	// Mistakes: exit 2 for the command line (never quoting the file), 1
	// for the API's refusal.
	bad := filepath.Join(t.TempDir(), "bad.json")
	_ = os.WriteFile(bad, []byte(`{"env":{"A":`+value+`}}`), 0o600)
	for _, c := range []struct {
		key  string
		args []string
		code int
		want string
	}{
		{"admin-key", []string{"put", "aws"}, ExitUsage, "--file is required"},
		{"admin-key", []string{"put", "aws", "--file", bad}, ExitUsage, "malformed JSON"},
		{"admin-key", []string{"put", "aws", "--file", filepath.Join(t.TempDir(), "none.json")}, ExitUsage, "no such file"},
		{"admin-key", []string{"get"}, ExitUsage, "want NAME"},
		{"admin-key", []string{"get", "nope"}, ExitFailed, "not found"},
		{"op-key", []string{"list"}, ExitFailed, "may not do this"},
	} {
		code, out, errOut := runCredentials(t, srv.URL, c.key, `{"env":{"TF_LOG":"x"}}`, c.args...)
		noValue(strings.Join(c.args, " "), out, errOut)
		if code != c.code || !strings.Contains(strings.ToLower(errOut), strings.ToLower(c.want)) {
			t.Errorf("%v: %d %q %q, want %d and %q", c.args, code, out, errOut, c.code, c.want)
		}
	}
	if code, _, errOut := runCredentials(t, srv.URL, "admin-key", `{"env":{"TF_LOG":"x"}}`, "put", "aws", "-f", "-"); code != ExitFailed ||
		!strings.Contains(errOut, "env.TF_LOG") && !strings.Contains(errOut, "TF_ variables") {
		t.Errorf("a refused set: %d %q", code, errOut)
	}
	if code, out, _ := runCredentials(t, srv.URL, "admin-key", "", "delete", "aws", "-o", "table"); code != 0 || out != "deleted aws\n" {
		t.Fatalf("delete: %d %q", code, out)
	}
}
