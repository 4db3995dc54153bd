package policy

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

const limitPolicy = `package limits

max_deletes := 2

deletes := [rc | some rc in input.resource_changes; "delete" in rc.change.actions]

deny contains sprintf("%d deletes, at most %d", [count(deletes), max_deletes]) if count(deletes) > max_deletes
`

const limitTests = `package limits

test_within if {
	count(deny) == 0 with input as {"resource_changes": [{"change": {"actions": ["delete"]}}]}
}

test_over if {
	deny == {"3 deletes, at most 2"} with input as {"resource_changes": [
		{"change": {"actions": ["delete"]}},
		{"change": {"actions": ["delete", "create"]}},
		{"change": {"actions": ["create", "delete"]}},
	]}
}

todo_test_later if false
`

func runTest(t *testing.T, dir string, verbose bool) (int, int, string, error) {
	t.Helper()
	var out strings.Builder
	passed, failed, err := Test(context.Background(), dir, verbose, &out)
	return passed, failed, out.String(), err
}

func TestTestPasses(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"limits.rego":                limitPolicy,
		"limits_test.rego":           limitTests,
		".git/broken_test.rego":      "package broken\ntest_x if {", // hidden: not loaded
		"nested/names_test.rego":     "package names\n\ntest_one if true\n\ntest_two if {\n\tprint(\"not shown\")\n}\n",
		"nested/unrelated/data.json": `{"x": 1}`,
	})
	passed, failed, out, err := runTest(t, dir, true)
	if err != nil || passed != 4 || failed != 0 {
		t.Fatalf("passed %d failed %d err %v\n%s", passed, failed, err, out)
	}
	want := "PASS data.limits.test_within\nPASS data.limits.test_over\nSKIP data.limits.todo_test_later\n" +
		"PASS data.names.test_one\nPASS data.names.test_two\n4 passed, 0 failed, 1 skipped (5 tests)\n"
	if out != want {
		t.Errorf("output\n%s\nwant\n%s", out, want)
	}
	// Without -v, only the summary.
	if _, _, out, _ := runTest(t, dir, false); out != "4 passed, 0 failed, 1 skipped (5 tests)\n" {
		t.Errorf("quiet output %q", out)
	}
}

func TestTestFailures(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"limits.rego": limitPolicy,
		"limits_test.rego": limitTests + `
test_wrong if {
	print("deny is", deny)
	count(deny) == 0 with input as {"resource_changes": [{"change": {"actions": ["delete"]}}, {"change": {"actions": ["delete"]}}, {"change": {"actions": ["delete"]}}]}
}

conflict := 1 if true

conflict := 2 if true

test_error if conflict == 1
`,
	})
	passed, failed, out, err := runTest(t, dir, false)
	if err != nil || passed != 2 || failed != 2 {
		t.Fatalf("passed %d failed %d err %v\n%s", passed, failed, err, out)
	}
	file := filepath.Join(dir, "limits_test.rego")
	for _, w := range []string{
		"FAIL data.limits.test_wrong (" + file + ":17)\n    deny is set()\n",
		"ERROR data.limits.test_error (" + file + ":26): ",
		"2 passed, 2 failed, 1 skipped (5 tests)\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output does not contain %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "PASS") {
		t.Errorf("quiet output lists passed tests:\n%s", out)
	}
}

func TestTestCompileErrors(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  string // file (relative), line and column, then part of the message
	}{
		{"parse error", map[string]string{"p.rego": "package p\n\ndeny contains x if {\n\tx := \n}\n", "p_test.rego": "package p\n\ntest_x if true\n"}, "p.rego:5:1: unexpected } token"},
		{"v0 syntax", map[string]string{"p.rego": "package p\n\ndeny[msg] {\n\tmsg := \"x\"\n}\n", "p_test.rego": "package p\n\ntest_x if true\n"}, "p.rego:3:"},
		{"unsafe var", map[string]string{"p.rego": "package p\n\ndeny contains msg if {\n\ty == 1\n\tmsg := \"x\"\n}\n", "p_test.rego": "package p\n\ntest_x if true\n"}, "p.rego:4:2: var y is unsafe"},
		{"blocked builtin", map[string]string{"p.rego": "package p\n\nr := http.send({\"method\": \"get\", \"url\": \"https://example.com\"})\n", "p_test.rego": "package p\n\ntest_x if true\n"}, "p.rego:3:6: undefined function http.send"},
		{"blocked in a test", map[string]string{"p_test.rego": "package p\n\ntest_x if {\n\topa.runtime()\n}\n"}, "p_test.rego:4:2: undefined function opa.runtime"},
		{"empty", map[string]string{"p.rego": "# only a comment\n", "p_test.rego": "package p\n\ntest_x if true\n"}, "p.rego:1:1: the module is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, tc.files)
			_, _, out, err := runTest(t, dir, true)
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("err %v (%T), output %q", err, err, out)
			}
			if want := filepath.Join(dir, tc.want); !strings.Contains(err.Error(), want) {
				t.Errorf("err %q does not contain %q", err, want)
			}
		})
	}
}

func TestTestWithoutTests(t *testing.T) {
	if _, _, _, err := runTest(t, writeFiles(t, map[string]string{"p.rego": "package p\n\ndeny contains \"x\" if false\n"}), false); err == nil || !strings.Contains(err.Error(), "no tests") {
		t.Errorf("no tests: %v", err)
	}
	if _, _, _, err := runTest(t, t.TempDir(), false); err == nil || !strings.Contains(err.Error(), "no Rego files") {
		t.Errorf("no files: %v", err)
	}
	if _, _, _, err := runTest(t, filepath.Join(t.TempDir(), "none"), false); err == nil {
		t.Error("a missing directory: no error")
	}
}
