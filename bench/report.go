package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Targets of the issues that asked for this benchmark (the latest: a task
// on a warm runner beats the same commands run bare).
const (
	TargetSmallRatio      = 1.00 // item 1, small fixtures, task against bare at the median
	TargetSlowRatio       = 1.01 // item 1, the ~5 s apply
	TargetProviderRatio   = 0.8  // item 1, the provider fixture on a warm runner
	TargetThroughputRatio = 1.10 // item 2
	TargetBurstCPUMS      = 100  // item 2, dev's own CPU per task in the burst
	TargetCreateRatio     = 1.10 // item 3, POST against StartWorkflow, p50 and p99
	TargetIdleMiB         = 150  // item 4
	TargetPeakMiB         = 300  // item 4
)

func boolPtr(b bool) *bool { return &b }

// dur formats milliseconds for the table.
func dur(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1f s", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.2f s", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.0f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

func pp(d Dist) string { return dur(d.P50) + " / " + dur(d.P99) }

// signed is a time difference with its sign: +12 ms, -30 ms.
func signed(v float64) string {
	if v < 0 {
		return "-" + dur(-v)
	}
	return "+" + dur(v)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// BuildRows makes the table's rows from the results.
func BuildRows(res *Results) []Row {
	var rows []Row
	for i, o := range res.Overhead {
		row := Row{
			ID:        fmt.Sprintf("1.%d", i+1),
			Measure:   fmt.Sprintf("Task POST → completed, %s (p50 / p99 of %d)", o.Fixture, o.Task.N),
			Terratask: pp(o.Task),
			Baseline:  "bare terraform script: " + pp(o.Bare),
			Value:     o.Task.P50, Base: o.Bare.P50, Unit: "ms",
		}
		switch {
		case o.Provider:
			row.Baseline = "bare terraform script, fresh dir, same mirror: " + pp(o.Bare)
			row.Ratio = fmt.Sprintf("%.2f× (%s)", o.Ratio, signed(o.AddedMS))
			row.Target = fmt.Sprintf("ratio ≤ %.2f", TargetProviderRatio)
			row.Met = boolPtr(o.Ratio <= TargetProviderRatio)
		case o.Resources > 0:
			row.Ratio = fmt.Sprintf("%.2f× (%s)", o.Ratio, signed(o.AddedMS))
			row.Target = fmt.Sprintf("ratio ≤ %.2f", TargetSmallRatio)
			row.Met = boolPtr(o.Ratio <= TargetSmallRatio)
		default:
			row.Ratio = fmt.Sprintf("%.3f× (%s)", o.Ratio, signed(o.AddedMS))
			row.Target = fmt.Sprintf("ratio ≤ %.2f", TargetSlowRatio)
			row.Met = boolPtr(o.Ratio <= TargetSlowRatio)
		}
		rows = append(rows, row)
	}
	if t := res.Throughput; t != nil {
		rows = append(rows, Row{
			ID: "2", Measure: fmt.Sprintf("Throughput: %d tasks from %d clients on 1 runner, wall until all completed (median of %d)", t.Tasks, t.Clients, len(t.TaskWall)),
			Terratask: fmt.Sprintf("%.1f s (%.1f tasks/s)", t.TaskP50, float64(t.Tasks)/t.TaskP50),
			Baseline:  fmt.Sprintf("same runs by xargs -P %d: %.1f s", t.Clients, t.BareP50),
			Ratio:     fmt.Sprintf("%.2f×", t.Ratio),
			Target:    fmt.Sprintf("ratio ≤ %.2f", TargetThroughputRatio),
			Met:       boolPtr(t.Ratio <= TargetThroughputRatio),
			Value:     t.TaskP50 * 1000, Base: t.BareP50 * 1000, Unit: "ms",
		})
		if t.DevCPUMS > 0 {
			rows = append(rows, Row{
				ID: "2.1", Measure: "CPU of terratask dev itself per task in the throughput runs (its terraform apart; median of runs)",
				Terratask: dur(t.DevCPUMS), Baseline: fmt.Sprintf("the bare script's whole run: %s", dur(t.BareCPUMS)),
				Ratio:  fmt.Sprintf("%.2f×", ratio(t.DevCPUMS, t.BareCPUMS)),
				Target: fmt.Sprintf("≤ %d ms", TargetBurstCPUMS), Met: boolPtr(t.DevCPUMS <= TargetBurstCPUMS),
				Value: t.DevCPUMS, Base: t.BareCPUMS, Unit: "ms",
			})
		}
	}
	if a := res.API; a != nil {
		if a.Create.N > 0 {
			rt, r99 := ratio(a.Create.P50, a.StartWF.P50), ratio(a.Create.P99, a.StartWF.P99)
			rows = append(rows, Row{
				ID: "3.1", Measure: fmt.Sprintf("Create: POST /tasks latency (p50 / p99 of %d)", a.Create.N),
				Terratask: pp(a.Create), Baseline: "raw StartWorkflow, same Temporal: " + pp(a.StartWF),
				Ratio:  fmt.Sprintf("%.2f× p50, %.2f× p99", rt, r99),
				Target: fmt.Sprintf("ratio ≤ %.2f at p50 and p99", TargetCreateRatio), Met: boolPtr(rt <= TargetCreateRatio && r99 <= TargetCreateRatio),
				Value: a.Create.P50, Base: a.StartWF.P50, Unit: "ms",
			})
		}
		for i, rd := range a.Reads {
			rows = append(rows, Row{
				ID:        fmt.Sprintf("3.%d", i+2),
				Measure:   fmt.Sprintf("%s, %s tasks in the store (p50 / p99 of %d)", rd.Name, thousands(a.Seeded), rd.Dist.N),
				Terratask: pp(rd.Dist), Baseline: "trivial handler: " + pp(a.Floor),
				Ratio:  fmt.Sprintf("%.1f× p99", ratio(rd.Dist.P99, a.Floor.P99)),
				Target: fmt.Sprintf("p99 < %.0f ms", rd.TargetMS), Met: boolPtr(rd.Dist.P99 < rd.TargetMS),
				Value: rd.Dist.P99, Base: a.Floor.P99, Unit: "ms",
			})
		}
		if a.RPS > 0 {
			rows = append(rows, Row{
				ID:        fmt.Sprintf("3.%d", len(a.Reads)+2),
				Measure:   fmt.Sprintf("GET /tasks/{id} sustained, %d clients, %.0f s", res.Settings.RPSClients, res.Settings.RPSSeconds),
				Terratask: fmt.Sprintf("%s req/s", thousands(int(a.RPS))),
				Baseline:  fmt.Sprintf("trivial handler: %s req/s", thousands(int(a.FloorRPS))),
				Ratio:     fmt.Sprintf("%.2f×", ratio(a.RPS, a.FloorRPS)),
				Target:    "—",
				Value:     a.RPS, Base: a.FloorRPS, Unit: "req/s",
			})
		}
	}
	if sb := res.Sandbox; sb != nil {
		rows = append(rows, Row{
			ID: "5.1", Measure: fmt.Sprintf("Sandbox per engine command: `terraform version` through a step's sandbox (p50 / p99 of %d, alternating)", sb.Sandboxed.N),
			Terratask: pp(sb.Sandboxed), Baseline: "the same command bare: " + pp(sb.Bare),
			Ratio:  fmt.Sprintf("%.2f× (%s)", ratio(sb.Sandboxed.P50, sb.Bare.P50), signed(sb.AddedMS)),
			Target: fmt.Sprintf("added p50 ≤ %d ms", TargetSandboxMS), Met: boolPtr(sb.AddedMS <= TargetSandboxMS),
			Value: sb.Sandboxed.P50, Base: sb.Bare.P50, Unit: "ms",
		})
	}
	if m := res.Memory; m != nil && m.IdleMiB > 0 {
		rows = append(rows, Row{
			ID: "4.1", Measure: "RSS of terratask dev, idle after start", Terratask: fmt.Sprintf("%.0f MiB", m.IdleMiB),
			Baseline: "—", Ratio: "—", Target: fmt.Sprintf("≤ %d MiB", TargetIdleMiB), Met: boolPtr(m.IdleMiB <= TargetIdleMiB),
			Value: m.IdleMiB, Unit: "MiB",
		})
		if m.PeakMiB > 0 && res.Throughput != nil {
			rows = append(rows, Row{
				ID:        "4.2",
				Measure:   fmt.Sprintf("RSS of terratask dev, peak with %d tasks in flight (sampled every 100 ms)", res.Throughput.Tasks),
				Terratask: fmt.Sprintf("%.0f MiB", m.PeakMiB), Baseline: fmt.Sprintf("idle: %.0f MiB", m.IdleMiB),
				Ratio: fmt.Sprintf("%.2f×", ratio(m.PeakMiB, m.IdleMiB)), Target: fmt.Sprintf("≤ %d MiB", TargetPeakMiB),
				Met:   boolPtr(m.PeakMiB <= TargetPeakMiB),
				Value: m.PeakMiB, Base: m.IdleMiB, Unit: "MiB",
			})
		}
	}
	if e := res.PolicyEval; e != nil && e.Check.N > 0 {
		rows = append(rows, Row{
			ID: "6.1", Measure: fmt.Sprintf("Policy evaluation: %d modules, %d-resource plan (post_plan; PostPlanInput + Eval, p50 / p99 of %d)", e.Modules, e.PlanResources, e.Check.N),
			Terratask: pp(e.Check), Baseline: "the plan's JSON parsed only (PostPlanInput): " + pp(e.Parse),
			Ratio:  fmt.Sprintf("%.2f× p99 (%s)", ratio(e.Check.P99, e.Parse.P99), signed(e.Check.P99-e.Parse.P99)),
			Target: fmt.Sprintf("p99 ≤ %.0f ms", TargetPolicyEvalP99MS), Met: boolPtr(e.Check.P99 <= TargetPolicyEvalP99MS),
			Value: e.Check.P99, Base: e.Parse.P99, Unit: "ms",
		})
	}
	if t := res.PolicyTask; t != nil && t.Task.N > 0 {
		rows = append(rows, Row{
			ID: "6.2", Measure: fmt.Sprintf("Task POST → completed, 1 resource, %d policies (p50 / p99 of %d, alternating)", t.Policies, t.Task.N),
			Terratask: pp(t.Task), Baseline: "the same task, an org without policies: " + pp(t.Base),
			Ratio:  fmt.Sprintf("%.2f× (%s)", t.Ratio, signed(t.AddedMS)),
			Target: fmt.Sprintf("ratio ≤ %.2f", TargetPolicyTaskRatio), Met: boolPtr(t.Ratio <= TargetPolicyTaskRatio),
			Value: t.Task.P50, Base: t.Base.P50, Unit: "ms",
		})
	}
	return rows
}

// Table renders the rows as a Markdown table.
func Table(rows []Row) string {
	var b strings.Builder
	b.WriteString("| # | Measure | terratask | Baseline (same run) | Ratio | Target | Met |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		met := "—"
		if r.Met != nil {
			met = "no"
			if *r.Met {
				met = "yes"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.ID, r.Measure, r.Terratask, r.Baseline, r.Ratio, r.Target, met)
	}
	return b.String()
}

// Details renders what explains the table: CPU per task, the phases of
// tasks under load, and the timeline of one task.
func Details(res *Results) string {
	var b strings.Builder
	if len(res.Overhead) > 0 {
		b.WriteString("CPU per task (item 1): terratask dev's own / its terraform children / the bare script:\n\n")
		for _, o := range res.Overhead {
			fmt.Fprintf(&b, "- %s: %s / %s / %s\n", o.Fixture, dur(o.DevCPUMS), dur(o.TerraformCPUMS), dur(o.BareCPUMS))
		}
		b.WriteString("\n")
	}
	if t := res.Throughput; t != nil {
		fmt.Fprintf(&b, "Throughput (item 2): runs %s s against %s s; creating all %d took %s s; CPU per task: dev %s, its terraform %s, bare script %s; at most %d terraform processes at once (bare: %d).\n",
			floats(t.TaskWall), floats(t.BareWall), t.Tasks, floats(t.CreateWall), dur(t.DevCPUMS), dur(t.TerraformCPUMS), dur(t.BareCPUMS), t.PeakTerraform, t.Clients)
		if len(t.Phases) > 0 {
			fmt.Fprintf(&b, "Phases of %d sampled tasks of the last run (p50 / max): ", t.Sampled)
			var ps []string
			for _, p := range t.Phases {
				ps = append(ps, fmt.Sprintf("%s %s / %s", p.Name, dur(p.P50MS), dur(p.MaxMS)))
			}
			b.WriteString(strings.Join(ps, "; "))
			fmt.Fprintf(&b, "; %d of %d waited for the runner's init lock.\n", t.InitWaits, t.Sampled)
		}
		b.WriteString("\n")
	}
	if a := res.API; a != nil && a.StartTaskWF.N > 0 {
		fmt.Fprintf(&b, "Create, decomposed: POST /tasks %s, StartWorkflow as terratask makes it (its input, ID policy and search attributes) %s, a trivial StartWorkflow %s (p50 / p99).\n\n",
			pp(a.Create), pp(a.StartTaskWF), pp(a.StartWF))
	}
	if m := res.Memory; m != nil && m.HWMMiB > 0 {
		fmt.Fprintf(&b, "Memory: VmHWM (peak RSS since start) after the throughput runs: %.0f MiB.\n\n", m.HWMMiB)
	}
	if bds := res.Breakdowns; len(bds) > 0 {
		var plain []BreakdownResult
		for _, bd := range bds {
			if bd.Policies == 0 {
				plain = append(plain, bd)
			}
		}
		if len(plain) > 0 {
			b.WriteString("Timeline of a task, p50 per segment (terraform replaced by a recording wrapper; POST and \"seen\" are the client's clock, the rest the workflow's log lines and the wrapper's):\n\n")
			b.WriteString(timelineTable(plain, plain[0].Segments))
		}
		for _, bd := range bds {
			if bd.Policies == 0 {
				continue
			}
			cols := []BreakdownResult{bd}
			for _, o := range plain {
				if o.Fixture == bd.Baseline {
					cols = []BreakdownResult{o, bd}
				}
			}
			fmt.Fprintf(&b, "The same timeline with the %d policies of row 6.2 in the dev's org, after the tasks above:\n\n", bd.Policies)
			// The task with policies sets the order; the other's own
			// segments go where they follow in it.
			b.WriteString(timelineTable(cols, segmentRows(append([]BreakdownResult{bd}, cols...))))
		}
		for _, bd := range bds {
			fmt.Fprintf(&b, "- %s (median of %d): %s = %s in terraform + %s around it (bare script %s). Terraform commands: ",
				bd.Fixture, bd.Runs, dur(bd.TotalMS), dur(bd.TerraformMS), dur(bd.OrchestrationMS), dur(bd.BareMS))
			var cs []string
			for _, c := range bd.Commands {
				cs = append(cs, fmt.Sprintf("%s ×%.0f (p50 %s)", c.Name, c.Count, dur(c.P50MS)))
			}
			b.WriteString(strings.Join(cs, ", "))
			b.WriteString("; the bare script's: ")
			cs = nil
			for _, k := range bareSteps {
				if v, ok := bd.BareSteps[k]; ok {
					cs = append(cs, fmt.Sprintf("%s %s", k, dur(v)))
				}
			}
			b.WriteString(strings.Join(cs, ", "))
			fmt.Fprintf(&b, ". Polling every %s: %.0f status requests, %s of dev's own CPU, %s from accepted to completed; every %s: %.0f, %s, %s (%s of CPU per status request of a running task).\n",
				dur(bd.PollMS), bd.Polls, dur(bd.DevCPUMS), dur(bd.ServerMS), dur(bd.SlowPollMS), bd.PollsSlow, dur(bd.DevCPUSlowPollMS), dur(bd.ServerSlowPollMS), dur(bd.CPUPerPollMS))
			if bd.HistoryEvents > 0 {
				fmt.Fprintf(&b, "  Its workflow history: %d events (", bd.HistoryEvents)
				var hs []string
				for _, k := range sortedKeys(bd.History) {
					hs = append(hs, fmt.Sprintf("%s %d", k, bd.History[k]))
				}
				b.WriteString(strings.Join(hs, ", ") + ").\n")
			}
			if len(bd.Temporal) > 0 {
				b.WriteString("  Where its time went in Temporal (from the history's event times, p50 per task): ")
				var ts []string
				for _, k := range sortedKeys(bd.Temporal) {
					ts = append(ts, fmt.Sprintf("%s %s", k, dur(bd.Temporal[k])))
				}
				b.WriteString(strings.Join(ts, ", ") + ".\n")
			}
		}
		b.WriteString("\n")
	}
	if p := res.Profile; p != nil {
		fmt.Fprintf(&b, "CPU profile of terratask dev (perf, %d samples) while %d one-resource tasks ran at once: %s of dev's own CPU per task. By owner (nearest application frame): ", p.Samples, p.Tasks, dur(p.DevCPUMS))
		var ss []string
		for _, s := range p.ByOwner {
			if s.Pct >= 0.5 {
				ss = append(ss, fmt.Sprintf("%s %.0f%%", s.Name, s.Pct))
			}
		}
		b.WriteString(strings.Join(ss, ", "))
		b.WriteString(". By owner function: ")
		ss = nil
		for _, s := range p.ByFunction {
			ss = append(ss, fmt.Sprintf("%s %.0f%%", s.Name, s.Pct))
		}
		b.WriteString(strings.Join(ss, ", "))
		b.WriteString(". Self time by package: ")
		ss = nil
		for _, s := range p.ByPackage {
			ss = append(ss, fmt.Sprintf("%s %.0f%%", s.Name, s.Pct))
		}
		b.WriteString(strings.Join(ss, ", ") + ".\n\n")
	}
	b.WriteString(policyDetails(res))
	if len(res.Load) > 0 {
		b.WriteString("CPU used by other processes of the machine (noise), per phase: ")
		var ls []string
		for _, l := range res.Load {
			ls = append(ls, fmt.Sprintf("%s %.0f%% (%.0f s)", l.Phase, l.OtherCPUPct, l.Seconds))
		}
		b.WriteString(strings.Join(ls, "; ") + ".\n\n")
	}
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "Note: %s\n\n", n)
	}
	return b.String()
}

func floats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(s, ", ")
}

// Heading is a run's section title.
func Heading(res *Results) string {
	kind := "full run"
	if res.Quick {
		kind = "quick run (BENCH_QUICK=1)"
	}
	commit := ""
	if res.Machine.Commit != "" {
		commit = ", commit " + res.Machine.Commit
	}
	return fmt.Sprintf("%s UTC — %s%s, %d CPUs, %s, terraform %s, took %s",
		res.Date.Format("2006-01-02 15:04"), kind, commit, res.Machine.CPUs, res.Machine.Go, res.Machine.Terraform,
		(time.Duration(res.Seconds) * time.Second).String())
}

// Section is a run's section of RESULTS.md.
func Section(res *Results) string {
	return "## " + Heading(res) + "\n\n" + Table(res.Rows) + "\n" + Details(res)
}

const resultsHeader = `# terratask benchmark results

Each section is one run of ` + "`make bench`" + ` (` + "`go run ./cmd/terratask-bench`" + `), newest
first; ` + "`results.json`" + ` holds the latest run for machines. Every terratask figure
stands beside its baseline measured in the same run. See README.md for what
each row measures and what holds the ratios back.

<!-- runs: newest first -->
`

const runsMarker = "<!-- runs: newest first -->\n"

// WriteResults writes dir/results.json and adds the run's section to the
// top of dir/RESULTS.md, keeping older sections.
func WriteResults(dir string, res *Results) error {
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	path := filepath.Join(dir, "RESULTS.md")
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.WriteFile(path, PrependSection(old, Section(res)), 0o644)
}

// PrependSection puts section first among the runs of a RESULTS.md.
func PrependSection(old []byte, section string) []byte {
	var rest []byte
	if i := bytes.Index(old, []byte(runsMarker)); i >= 0 {
		rest = old[i+len(runsMarker):]
	} else if len(bytes.TrimSpace(old)) > 0 {
		rest = old // not ours: keep it whole, below
	}
	out := []byte(resultsHeader + "\n" + strings.TrimRight(section, "\n") + "\n")
	if len(bytes.TrimSpace(rest)) > 0 {
		out = append(out, '\n')
		out = append(out, bytes.TrimLeft(rest, "\n")...)
	}
	return out
}

// segmentRows are the segments of all breakdowns, once each: the first
// one's in order, then each other's where it follows the segment before it
// in that breakdown (a task with policies has segments the others lack).
func segmentRows(bds []BreakdownResult) []Segment {
	var out []Segment
	index := func(s Segment) int {
		for i, o := range out {
			if o.From == s.From && o.To == s.To {
				return i
			}
		}
		return -1
	}
	for _, bd := range bds {
		at := -1
		for _, s := range bd.Segments {
			if i := index(s); i >= 0 {
				at = i
				continue
			}
			at++
			out = slices.Insert(out, at, s)
		}
	}
	return out
}

// timelineTable renders the breakdowns' timelines side by side, a line per
// segment of rows.
func timelineTable(bds []BreakdownResult, rows []Segment) string {
	var b strings.Builder
	b.WriteString("| from | to |")
	for _, bd := range bds {
		b.WriteString(" " + bd.Fixture + " |")
	}
	b.WriteString(" where |\n|---|---|")
	for range bds {
		b.WriteString("---|")
	}
	b.WriteString("---|\n")
	type key struct{ from, to string }
	vals := make([]map[key]float64, len(bds))
	for i, bd := range bds {
		vals[i] = map[key]float64{}
		for _, s := range bd.Segments {
			vals[i][key{s.From, s.To}] = s.P50MS
		}
	}
	for _, s := range rows {
		fmt.Fprintf(&b, "| %s | %s |", s.From, s.To)
		for i := range bds {
			if v, ok := vals[i][key{s.From, s.To}]; ok {
				b.WriteString(" " + dur(v) + " |")
			} else {
				b.WriteString(" — |")
			}
		}
		b.WriteString(" " + s.Kind + " |\n")
	}
	b.WriteString("| **total** | |")
	for _, bd := range bds {
		b.WriteString(" **" + dur(bd.TotalMS) + "** |")
	}
	b.WriteString(" |\n\n")
	return b.String()
}
