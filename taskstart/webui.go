package taskstart

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"go.temporal.io/sdk/client"

	"github.com/terratask/terratask/task"
)

// Memo fields every task's workflow carries for the Temporal Web UI, set at
// start and never upserted. Like every payload they are encrypted; the UI
// shows them through the codec.
const (
	memoName   = "name"
	memoAgent  = "agent"
	memoRunner = "runner"
)

// maxSummary bounds the static summary (Temporal keeps it small: one line).
const maxSummary = 200

// Describe sets what the Temporal Web UI shows of a task before any
// step runs: a one-line static summary (the task's name and agent), static
// details, and a memo with name, agent and runner.
func Describe(opts *client.StartWorkflowOptions, in task.Input) {
	summary := fmt.Sprintf("%s (agent %s)", oneLine(in.Name), oneLine(in.AgentID))
	if len(summary) > maxSummary {
		cut := maxSummary - 3
		for cut > 0 && !utf8.RuneStart(summary[cut]) {
			cut--
		}
		summary = summary[:cut] + "..."
	}
	opts.StaticSummary = summary
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**\n\n", oneLine(in.Name))
	if in.Description != "" {
		fmt.Fprintf(&b, "%s\n\n", in.Description)
	}
	fmt.Fprintf(&b, "- task: `%s`\n- agent: `%s`\n- runner: `%s`\n- org: `%s`\n- action: %s\n- steps: %s\n",
		in.ID, in.AgentID, in.RunnerID, in.Org, in.Params.EffectiveAction(), stepList(in.Params.EffectiveAction().Steps()))
	if in.CreatedBy != "" {
		fmt.Fprintf(&b, "- created by: %s\n", in.CreatedBy)
	}
	opts.StaticDetails = b.String()
	if opts.Memo == nil {
		opts.Memo = map[string]any{}
	}
	opts.Memo[memoName] = in.Name
	opts.Memo[memoAgent] = in.AgentID
	opts.Memo[memoRunner] = in.RunnerID
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func stepList(steps []task.Step) string {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = string(s)
	}
	return strings.Join(names, " → ")
}
