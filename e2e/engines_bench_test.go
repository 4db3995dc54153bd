package e2e

import (
	"testing"
	"time"
)

// BenchmarkFiveResourcesByEngine measures POST to completed of the
// five-resource fixture (testdata/five) on Terraform and on OpenTofu in the
// same run, one task at a time, the engines alternating; it reports each
// engine's median in seconds. Run with -benchtime 7x for seven of each.
func BenchmarkFiveResourcesByEngine(b *testing.B) {
	if tofuPath == "" {
		b.Skipf("no OpenTofu: %v", tofuErr)
	}
	files := fixture(b, "five")
	took := map[engine][]time.Duration{}
	for i := 0; i < b.N; i++ {
		for _, eng := range []engine{engineTerraform, engineOpenTofu} {
			start := time.Now()
			tk := shared.create(b, map[string]any{
				"name": "bench " + string(eng), "agent_id": "agent-bench", "runner_id": "local",
				"parameters": eng.params(map[string]any{"files": files}),
			})
			if st := shared.waitStatusFast(b, tk.ID, 2*time.Minute); st.Status != "completed" {
				b.Fatalf("%s task ended %+v", eng, st)
			}
			took[eng] = append(took[eng], time.Since(start))
		}
	}
	for _, eng := range []engine{engineTerraform, engineOpenTofu} {
		b.ReportMetric(median(took[eng]).Seconds(), string(eng)+"_median_s")
	}
}
