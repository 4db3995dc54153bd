package activities

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBackendDetection(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want bool
	}{
		{"none", `resource "terraform_data" "a" {}`, false},
		{"local", "terraform {\n  backend \"local\" {\n    path = \"x\"\n  }\n}\n", true},
		{"s3 one line", `terraform { backend "s3" {} }`, true},
		{"cloud", "terraform {\n  cloud {\n    organization = \"o\"\n  }\n}\n", true},
		{"required only", "terraform {\n  required_version = \">= 1.0\"\n}\n", false},
		{"commented", "# terraform { backend \"s3\" {} }\n/* terraform {\n backend \"s3\" {}\n} */\n", false},
		{"backend word elsewhere", "resource \"x\" \"y\" {\n  backend \"z\" {}\n}\nvariable \"backend\" {}\n", false},
		{"cloud block in a resource", "resource \"x\" \"y\" {\n  cloud {\n  }\n}\n", false},
		{"string with braces", "locals {\n  a = \"terraform { backend \\\"s3\\\" {} }\"\n}\n", false},
		{"heredoc", "locals {\n  a = <<EOT\n}\nterraform {\n backend \"s3\" {}\n}\nEOT\n}\n", false},
		{"after heredoc", "locals {\n  a = <<-EOT\n  {{\n  EOT\n}\nterraform {\n  backend \"gcs\" {}\n}\n", true},
	} {
		if got := hclDeclaresBackend([]byte(tc.src)); got != tc.want {
			t.Errorf("%s: hclDeclaresBackend = %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{`{"terraform": {"backend": {"s3": {}}}}`, true},
		{`{"terraform": [{"required_version": "1"}, {"cloud": {}}]}`, true},
		{`{"terraform": {"required_version": "1"}}`, false},
		{`{"resource": {}}`, false},
	} {
		if got := jsonDeclaresBackend([]byte(tc.src)); got != tc.want {
			t.Errorf("jsonDeclaresBackend(%s) = %v, want %v", tc.src, got, tc.want)
		}
	}
}

func TestCopyModuleSymlinks(t *testing.T) {
	src, outside := t.TempDir(), t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(src, "main.tf"), "# main")
	write(filepath.Join(src, "sub", "x.tf"), "# x")
	write(filepath.Join(src, "terraform.tfstate"), "{}")
	write(filepath.Join(src, ".terraform", "junk"), "junk")
	write(filepath.Join(outside, "secret.txt"), "secret")
	if err := os.Symlink("sub", filepath.Join(src, "alias")); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := copyModule(src, dst); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"main.tf", "sub/x.tf", "alias/x.tf"} {
		fi, err := os.Lstat(filepath.Join(dst, p))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s not copied as a file: %v", p, err)
		}
	}
	for _, p := range []string{"terraform.tfstate", ".terraform"} {
		if _, err := os.Stat(filepath.Join(dst, p)); err == nil {
			t.Errorf("%s was copied", p)
		}
	}

	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(src, "leak.txt")); err != nil {
		t.Fatal(err)
	}
	if err := copyModule(src, t.TempDir()); err == nil {
		t.Error("a symlink leaving the module was followed")
	}
}

func TestHCLString(t *testing.T) {
	if got := hclString(`/a/${x}/%{y}/"q"`); got != `"/a/$${x}/%%{y}/\"q\""` {
		t.Errorf("hclString = %s", got)
	}
}

func TestTextDiagnostics(t *testing.T) {
	// terraform init -no-color of a broken file (no -json before 1.9).
	plain := "\nError: Terraform encountered problems during initialisation, including problems\nwith the configuration, described below.\n\n" +
		"The Terraform configuration must be valid before initialization so that\nTerraform can determine which modules and providers need to be installed.\n\n\n" +
		"Error: Invalid expression\n\n  on main.tf line 2, in resource \"terraform_data\" \"a\":\n   2:   input = \n   3: }\n\n" +
		"Expected the start of an expression, but found an invalid expression token.\n"
	boxed := "╷\n│ Warning: Unable to open CLI configuration file\n│\n│ The file does not exist.\n╵\n" +
		"╷\n│ Error: Invalid expression\n│\n│   on main.tf line 2, in resource \"terraform_data\" \"a\":\n│    2:   input =\n│\n│ Expected the start of an expression.\n╵\n"
	for name, out := range map[string]string{"plain": plain, "boxed": boxed} {
		tr := newUITracker()
		d := &textDiagnostics{tr: tr}
		for _, l := range strings.Split(out, "\n") {
			d.line(l)
		}
		d.flush()
		diags := tr.diagnostics()
		var found bool
		for _, x := range diags {
			if x.Severity != "error" {
				t.Errorf("%s: collected %+v", name, x)
			}
			if x.Summary == "Invalid expression" && x.File == "main.tf" && x.Line == 2 && strings.HasPrefix(x.Detail, "Expected the start") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: diagnostics %+v", name, diags)
		}
		if err := terraformError("configuration_error", "init", nil, diags); !strings.Contains(err.msg, "Invalid expression (main.tf:2)") {
			t.Errorf("%s: message %q", name, err.msg)
		}
	}
}
