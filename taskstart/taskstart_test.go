package taskstart

import (
	"strings"
	"testing"
	"unicode/utf8"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/terratask/terratask/task"
)

func TestStaticSummaryIsOneBoundedLine(t *testing.T) {
	var o client.StartWorkflowOptions
	Describe(&o, task.Input{ID: "task-x", Name: "two\nlines  " + strings.Repeat("é", 150), AgentID: "agent-1", RunnerID: "r"})
	if strings.Contains(o.StaticSummary, "\n") || len(o.StaticSummary) > maxSummary || !utf8.ValidString(o.StaticSummary) ||
		!strings.HasPrefix(o.StaticSummary, "two lines é") || !strings.HasSuffix(o.StaticSummary, "...") {
		t.Fatalf("summary %q (%d bytes)", o.StaticSummary, len(o.StaticSummary))
	}
	if o.Memo["name"] == nil || !strings.Contains(o.StaticDetails, "- steps: installing → initializing → planning → applying") {
		t.Fatalf("memo %v details %q", o.Memo, o.StaticDetails)
	}
}

// keywords are a start's search attributes by name.
func keywords(t *testing.T, o client.StartWorkflowOptions) map[string]string {
	t.Helper()
	got := map[string]string{}
	for k, v := range o.TypedSearchAttributes.GetUntypedValues() {
		got[k.GetName()] = v.(string)
	}
	return got
}

func TestOptions(t *testing.T) {
	in := task.Input{ID: "task-1", AgentID: "agent-1", RunnerID: "runner-1", Org: "org-a"}
	o := Options(in)
	if o.ID != "task-1" || o.TaskQueue != task.ControlPlaneTaskQueue ||
		o.WorkflowIDReusePolicy != enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE ||
		o.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL || !o.WorkflowExecutionErrorWhenAlreadyStarted {
		t.Fatalf("options %+v", o)
	}
	want := map[string]string{task.SearchAttrStatus: "pending", task.SearchAttrAgent: "agent-1", task.SearchAttrRunner: "runner-1", task.SearchAttrOrg: "org-a"}
	if got := keywords(t, o); len(got) != len(want) || got[task.SearchAttrStatus] != want[task.SearchAttrStatus] ||
		got[task.SearchAttrAgent] != want[task.SearchAttrAgent] || got[task.SearchAttrRunner] != want[task.SearchAttrRunner] ||
		got[task.SearchAttrOrg] != want[task.SearchAttrOrg] {
		t.Fatalf("search attributes %v, want %v", got, want)
	}
}

func TestScheduleAction(t *testing.T) {
	in := task.Input{ID: "ignored", Name: "nightly", AgentID: "agent-1", RunnerID: "runner-1", Org: "org-a", ScheduleID: "sch-1"}
	a := ScheduleAction("sch-1-task", in)
	args, ok := a.Args[0].(task.Input)
	if a.ID != "sch-1-task" || a.Workflow != task.WorkflowType || a.TaskQueue != task.ControlPlaneTaskQueue || !ok || args.ID != "" || args.ScheduleID != "sch-1" {
		t.Fatalf("action %+v", a)
	}
	if got := keywords(t, client.StartWorkflowOptions{TypedSearchAttributes: a.TypedSearchAttributes}); got[task.SearchAttrStatus] != "pending" || got[task.SearchAttrOrg] != "org-a" {
		t.Fatalf("search attributes %v", got)
	}
	if a.StaticSummary != "nightly (agent agent-1)" || !strings.Contains(a.StaticDetails, "- task: `sch-1-task-<run time>`") || a.Memo["runner"] != "runner-1" {
		t.Fatalf("web UI: %q %q %v", a.StaticSummary, a.StaticDetails, a.Memo)
	}
}
