package modules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	for range 2 { // idempotent
		if err := WriteDemo(dir); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	for _, want := range []string{`variable "app_name"`, `default     = "demo-app"`, `variable "deploy_strategy"`, `default     = "rolling"`, `terraform_data`} {
		if !strings.Contains(src, want) {
			t.Errorf("demo main.tf lacks %q", want)
		}
	}
	if n := strings.Count(src, `resource "terraform_data"`); n != 5 {
		t.Errorf("demo has %d terraform_data resources, want 5", n)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}
