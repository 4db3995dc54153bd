package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkApproveToApplying measures, on the shared `terratask dev`, how
// long an approved task takes from the approve call's 200 to its apply
// step starting, against how long a task without approval takes from the
// end of its plan step to its apply step starting. Each iteration takes 10
// samples of both and reports their medians:
//
//	approve-to-applying-ms: the approve call's 200 (client clock) to the
//	    workflow's "step applying started" log entry (negative when the
//	    apply started before the 200 arrived: the update completes with
//	    the workflow task that also starts the apply);
//	approve-sent-to-applying-ms: the approve request sent to that entry;
//	approve-to-status-ms: the approve call's 200 to the first status
//	    answer whose metadata shows current_step applying (polled every
//	    10 ms);
//	plain-plan-end-to-applying-ms: a plain task's last planning log entry
//	    (the plan kept for review) to its "step applying started" entry.
//
// Run: go test ./e2e -run '^$' -bench ApproveToApplying -benchtime 1x
func BenchmarkApproveToApplying(b *testing.B) {
	files := fixture(b, "review")
	var approved, sent, polled, plain []float64
	for i := 0; i < b.N; i++ {
		for j := 0; j < 10; j++ {
			ws := fmt.Sprintf("bench-approve-%d-%d-%d", time.Now().UnixNano(), i, j)
			body := map[string]any{"name": "bench", "agent_id": "agent-bench", "runner_id": "local",
				"parameters": map[string]any{"files": files, "workspace": ws, "approval": "required"}}
			tk := shared.create(b, body)
			waitWaiting(b, shared, tk.ID)
			asked := time.Now()
			r := decide(b, shared, shared.key, tk.ID, "approve", nil)
			ok := time.Now()
			if r.code != http.StatusOK {
				b.Fatalf("approve: %d %s", r.code, r.body)
			}
			for {
				var st Status
				shared.request(b, http.MethodGet, "/api/v1/tasks/"+tk.ID+"/status", nil, &st)
				if st.Metadata.CurrentStep == "applying" || terminal(st) {
					polled = append(polled, ms(time.Since(ok)))
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			waitEnd(b, shared, tk.ID)
			applying, _ := logTimes(b, tk.ID)
			approved = append(approved, ms(applying.Sub(ok)))
			sent = append(sent, ms(applying.Sub(asked)))

			body["parameters"].(map[string]any)["approval"] = "none"
			body["parameters"].(map[string]any)["workspace"] = ws + "-plain"
			tk = shared.create(b, body)
			waitEnd(b, shared, tk.ID)
			applying, planEnd := logTimes(b, tk.ID)
			plain = append(plain, ms(applying.Sub(planEnd)))
		}
	}
	b.ReportMetric(median(approved), "approve-to-applying-ms")
	b.ReportMetric(median(sent), "approve-sent-to-applying-ms")
	b.ReportMetric(median(polled), "approve-to-status-ms")
	b.ReportMetric(median(plain), "plain-plan-end-to-applying-ms")
	b.Logf("approve to applying (ms): %v", approved)
	b.Logf("approve request sent to applying (ms): %v", sent)
	b.Logf("approve to status applying (ms): %v", polled)
	b.Logf("plain plan end to applying (ms): %v", plain)
}

// logTimes returns when the task's apply step started (the workflow's log
// entry) and when its last plan step ended (its last planning log entry).
func logTimes(b *testing.B, id string) (applying, planEnd time.Time) {
	b.Helper()
	for _, l := range shared.logs(b, id, "?limit=10000") {
		ts, err := time.Parse(time.RFC3339Nano, l.Timestamp)
		if err != nil {
			b.Fatal(err)
		}
		if l.Metadata["step"] == "planning" && l.Metadata["component"] != "workflow" {
			planEnd = ts
		}
		if l.Metadata["component"] == "workflow" && strings.HasPrefix(l.Message, "step applying started") && applying.IsZero() {
			applying = ts
		}
	}
	if applying.IsZero() || planEnd.IsZero() {
		b.Fatalf("task %s: no apply start or plan end in its logs", id)
	}
	return applying, planEnd
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
