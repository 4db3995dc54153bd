package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkTaskFiveResources measures POST to completed for the five
// terraform_data fixture through the API of the shared `terratask dev`.
// Compare with BenchmarkBareTerraformFiveResources from the same run.
func BenchmarkTaskFiveResources(b *testing.B) {
	files := fixture(b, "five")
	for i := 0; i < b.N; i++ {
		tk := shared.create(b, map[string]any{
			"name": "bench", "agent_id": "agent-bench", "runner_id": "local",
			"parameters": map[string]any{"files": files},
		})
		seen := shared.waitStatusFast(b, tk.ID, 2*time.Minute)
		if seen.Status != "completed" {
			b.Fatalf("bench task ended %+v", seen)
		}
	}
}

// BenchmarkBareTerraformFiveResources runs the same terraform commands a task
// runs (version, init, plan -out, apply of the plan, output -json) by hand in
// a fresh directory: the baseline of BenchmarkTaskFiveResources.
func BenchmarkBareTerraformFiveResources(b *testing.B) {
	files := fixture(b, "five")
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
				b.Fatal(err)
			}
		}
		for _, args := range [][]string{
			{"version", "-json"},
			{"init", "-input=false", "-json"},
			{"plan", "-input=false", "-json", "-out=plan.tfplan"},
			{"apply", "-input=false", "-json", "plan.tfplan"},
			{"output", "-json"},
		} {
			cmd := exec.Command("terraform", args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null", "TF_IN_AUTOMATION=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("terraform %v: %v\n%s", args, err, out)
			}
		}
	}
}
