package policy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeFiles writes files (relative path -> text) below a new directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDir(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"required_tags.rego":        "package main\n",
		"aws/tags.rego":             "package aws.tags\n",
		"aws/iam/no-admin.rego":     "package aws.iam\n",
		"aws/tags_test.rego":        "package aws.tags\n",      // a test
		".hidden.rego":              "package hidden\n",        // hidden file
		".git/x.rego":               "package git\n",           // hidden directory
		"aws/.draft/wip.rego":       "package wip\n",           // hidden directory below
		"README.md":                 "# not a policy\n",        // not Rego
		"data.json":                 "{}",                      // not Rego
		"nested/deeper/v1.2.rego":   "package nested\n",        // dots are kept
		"no_local_exec_test.rego":   "package no_local_exec\n", // a test
		"no_local_exec.rego":        "package no_local_exec\n",
		"aws/tags.rego.bak":         "package bak\n",
		"nested/deeper/README.rego": "package readme\n",
	})
	got, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range got {
		names = append(names, m.Name)
	}
	want := []string{"aws.iam.no-admin", "aws.tags", "nested.deeper.README", "nested.deeper.v1.2", "no_local_exec", "required_tags"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("names %q, want %q", names, want)
	}
	if got[0].Path != filepath.Join(dir, "aws", "iam", "no-admin.rego") || got[1].Rego != "package aws.tags\n" ||
		got[3].Path != filepath.Join(dir, "nested", "deeper", "v1.2.rego") || got[5].Path != filepath.Join(dir, "required_tags.rego") {
		t.Errorf("%+v", got)
	}

	// An empty directory has no policies; a missing one or a file is an error.
	if got, err := LoadDir(t.TempDir()); err != nil || len(got) != 0 {
		t.Errorf("empty: %v %v", got, err)
	}
	if _, err := LoadDir(filepath.Join(dir, "none")); err == nil {
		t.Error("a missing directory: no error")
	}
	if _, err := LoadDir(filepath.Join(dir, "required_tags.rego")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file: %v", err)
	}
}

func TestLoadDirRefusesBadNames(t *testing.T) {
	for _, tc := range []struct {
		files map[string]string
		want  []string // in the error
	}{
		{map[string]string{"ok.rego": "package ok\n", "bad name.rego": "package bad\n"}, []string{"bad name.rego", `"bad name"`}},
		{map[string]string{"_private.rego": "package p\n"}, []string{"_private.rego"}},
		{map[string]string{"-x.rego": "package p\n"}, []string{"-x.rego", `"-x"`}},
		{map[string]string{"sub/x+y.rego": "package p\n"}, []string{"x+y.rego", `"sub.x+y"`}},
		{map[string]string{strings.Repeat("a", 101) + ".rego": "package p\n"}, []string{"is not valid"}},
		{map[string]string{"a/b.rego": "package p\n", "a.b.rego": "package q\n"}, []string{"a.b.rego", filepath.Join("a", "b.rego"), `policy "a.b"`}},
	} {
		dir := writeFiles(t, tc.files)
		_, err := LoadDir(dir)
		if err == nil {
			t.Errorf("%v: no error", tc.files)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not contain %q", tc.files, err, w)
			}
		}
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"a": true, "aws.tags": true, "no-local_exec.v2": true, "9lives": true, strings.Repeat("x", 100): true,
		"": false, ".a": false, "-a": false, "_a": false, "a b": false, "a/b": false, "é": false, strings.Repeat("x", 101): false,
	} {
		if ValidName(name) != want {
			t.Errorf("ValidName(%q) = %v", name, !want)
		}
	}
}
