package activities

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/terratask/terratask/task"
)

// uiMessage is the part of a line of Terraform's machine-readable UI
// (`-json`) that terratask uses.
type uiMessage struct {
	Level      string        `json:"@level"`
	Message    string        `json:"@message"`
	Timestamp  string        `json:"@timestamp"`
	Type       string        `json:"type"`
	Hook       *uiHook       `json:"hook"`
	Change     *uiHook       `json:"change"`
	Changes    *uiChanges    `json:"changes"`
	Diagnostic *uiDiagnostic `json:"diagnostic"`
	// Outputs are the root module's outputs: after a plan their planned
	// action, after an apply their values (sensitive ones without).
	Outputs map[string]uiOutput `json:"outputs"`
}

// uiOutput is one output of an "outputs" message.
type uiOutput struct {
	Sensitive bool            `json:"sensitive"`
	Action    string          `json:"action"`
	Value     json.RawMessage `json:"value"`
}

type uiHook struct {
	Resource *struct {
		Addr string `json:"addr"`
	} `json:"resource"`
	Action string `json:"action"`
}

func (h *uiHook) addr() string {
	if h == nil || h.Resource == nil {
		return ""
	}
	return h.Resource.Addr
}

type uiChanges struct {
	Add       int    `json:"add"`
	Change    int    `json:"change"`
	Import    int    `json:"import"`
	Remove    int    `json:"remove"`
	Operation string `json:"operation"`
}

type uiDiagnostic struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
	Address  string `json:"address"`
	Range    *struct {
		Filename string `json:"filename"`
		Start    struct {
			Line int `json:"line"`
		} `json:"start"`
	} `json:"range"`
}

// countedActions are the planned actions that make Terraform apply
// something to a resource, so progress can count them as done; no-op and
// read (data sources), and pure moves or forgets, apply nothing.
var countedActions = map[string]bool{"create": true, "update": true, "delete": true, "replace": true}

// uiTracker follows a Terraform command's UI messages: resource counts for
// progress, the change summary and error diagnostics.
type uiTracker struct {
	mu      sync.Mutex
	planned map[string]bool
	done    map[string]bool
	summary *uiChanges
	diags   []task.Diagnostic
	// actions counts the plan's resource changes by action, and
	// outputChanges the outputs it changes (see planSummary).
	actions       map[string]int
	outputChanges int
	// applied are the outputs an apply reported, nil until it did.
	applied map[string]uiOutput
}

func newUITracker() *uiTracker {
	return &uiTracker{planned: map[string]bool{}, done: map[string]bool{}, actions: map[string]int{}}
}

func (t *uiTracker) observe(m *uiMessage) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch m.Type {
	case "planned_change":
		if m.Change != nil && countedActions[m.Change.Action] && m.Change.addr() != "" {
			t.planned[m.Change.addr()] = true
		}
		if m.Change != nil && m.Change.addr() != "" {
			t.actions[m.Change.Action]++
		}
	case "outputs":
		planned := false
		for _, o := range m.Outputs {
			if o.Action != "" {
				planned = true
				if o.Action != "noop" {
					t.outputChanges++
				}
			}
		}
		if !planned && m.Outputs != nil {
			t.applied = m.Outputs
		}
	case "apply_complete":
		// A replace completes twice (delete, create) on one address; a
		// set counts it once.
		if a := m.Hook.addr(); a != "" {
			t.done[a] = true
		}
	case "change_summary":
		if m.Changes != nil {
			c := *m.Changes
			t.summary = &c
		}
	case "diagnostic":
		if d := m.Diagnostic; d != nil && d.Severity == "error" {
			td := task.Diagnostic{Severity: d.Severity, Summary: d.Summary, Detail: d.Detail, Address: d.Address}
			if d.Range != nil {
				td.File, td.Line = d.Range.Filename, d.Range.Start.Line
			}
			t.diags = append(t.diags, td)
		}
	}
}

func (t *uiTracker) counts() (planned, done int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.planned), len(t.done)
}

func (t *uiTracker) diagnostics() []task.Diagnostic {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]task.Diagnostic(nil), t.diags...)
}

// forgetOutputs drops what earlier commands of the step reported, before
// an apply.
func (t *uiTracker) forgetOutputs() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.applied = nil
}

// resetPlan drops the counts of an earlier plan of the step.
func (t *uiTracker) resetPlan() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.actions = map[string]int{}
	t.outputChanges = 0
}

// appliedOutputs are the outputs the apply reported (nil if it did not),
// as `terraform output` would return them.
func (t *uiTracker) appliedOutputs() map[string]tfexec.OutputMeta {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.applied == nil {
		return nil
	}
	out := make(map[string]tfexec.OutputMeta, len(t.applied))
	for name, o := range t.applied {
		out[name] = tfexec.OutputMeta{Sensitive: o.Sensitive, Value: o.Value}
	}
	return out
}

// planSummary counts the plan's changes from its planned_change and outputs
// messages, as reviewOf counts them from the JSON plan: a replace is also an
// add and a destroy; imports and forgets are changes. (A no-op with an
// import reads "import".)
func (t *uiTracker) planSummary() task.PlanSummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.actions
	return task.PlanSummary{
		Add:     a["create"] + a["replace"],
		Change:  a["update"] + a["remove"] + a["import"],
		Destroy: a["delete"] + a["replace"],
		Replace: a["replace"],
		Outputs: t.outputChanges,
	}
}

func (t *uiTracker) changeSummary() *uiChanges {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.summary
}

// lineWriter calls fn for every complete line written to it; Terraform's
// output goes through one per stream. It is safe for concurrent use.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func(line string)
	// onFirst, when set, is called at the first write: the command is
	// running then (see procgroup.Tracker.Note).
	onFirst func()
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.onFirst != nil {
		w.onFirst()
		w.onFirst = nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		w.fn(line)
	}
	return len(p), nil
}

// flushPartial emits a last line that had no newline.
func (w *lineWriter) flushPartial() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		line := string(w.buf)
		w.buf = nil
		w.fn(line)
	}
}

// levels maps Terraform's @level to a store level.
var levels = map[string]task.Level{
	"trace": task.LevelDebug, "debug": task.LevelDebug, "info": task.LevelInfo,
	"warn": task.LevelWarn, "error": task.LevelError,
}

// uiLine turns one line of Terraform's stdout into a log entry, feeding the
// tracker. Lines that are not UI messages (plain init output, older
// Terraform) become info entries.
func uiLine(book *logBook, tr *uiTracker, line string) {
	line = strings.TrimRight(line, "\r")
	if strings.TrimSpace(line) == "" {
		return
	}
	var m uiMessage
	if line[0] != '{' || json.Unmarshal([]byte(line), &m) != nil || (m.Message == "" && m.Type == "") {
		book.add(task.LevelInfo, componentTerraform, line, time.Now(), map[string]string{"type": "output"})
		return
	}
	tr.observe(&m)
	level, ok := levels[m.Level]
	if !ok {
		level = task.LevelInfo
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Timestamp)
	if err != nil {
		ts = time.Now()
	}
	meta := map[string]string{"type": m.Type, "resource": resourceOf(&m)}
	if m.Diagnostic != nil && m.Diagnostic.Detail != "" {
		meta["detail"] = m.Diagnostic.Detail
	}
	book.add(level, componentTerraform, m.Message, ts, meta)
}

func resourceOf(m *uiMessage) string {
	if a := m.Hook.addr(); a != "" {
		return a
	}
	if a := m.Change.addr(); a != "" {
		return a
	}
	if m.Diagnostic != nil {
		return m.Diagnostic.Address
	}
	return ""
}

// stderrLine records a line Terraform wrote to stderr and feeds the
// parser of human-readable diagnostics.
func stderrLine(book *logBook, diags *textDiagnostics, line string) {
	line = strings.TrimRight(line, "\r")
	diags.line(line)
	if strings.TrimSpace(line) == "" {
		return
	}
	book.add(task.LevelError, componentTerraform, line, time.Now(), map[string]string{"type": "stderr"})
}

// textDiagnostics parses the human-readable diagnostics a command without
// -json writes to stderr (init of Terraform before 1.9, or OpenTofu):
//
//	╷
//	│ Error: Invalid expression
//	│
//	│   on main.tf line 2, in resource "terraform_data" "a":
//	│    2:   input =
//	│
//	│ Expected the start of an expression, ...
//	╵
//
// Error diagnostics go to the tracker.
type textDiagnostics struct {
	tr     *uiTracker
	mu     sync.Mutex
	cur    *task.Diagnostic
	detail []string
}

var (
	diagStartRe   = regexp.MustCompile(`^(Error|Warning): (.+)$`)
	diagOnRe      = regexp.MustCompile(`^\s*on (.+) line (\d+)`)
	diagSnippetRe = regexp.MustCompile(`^\s*(\d+:|├|└|\()`)
)

func (d *textDiagnostics) line(raw string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	trimmed := strings.TrimSpace(raw)
	if trimmed == "╵" {
		d.end()
		return
	}
	text := strings.TrimPrefix(strings.TrimPrefix(trimmed, "│"), " ")
	if m := diagStartRe.FindStringSubmatch(text); m != nil {
		d.end()
		sev := "error"
		if m[1] == "Warning" {
			sev = "warning"
		}
		d.cur = &task.Diagnostic{Severity: sev, Summary: m[2]}
		return
	}
	if d.cur == nil {
		return
	}
	if m := diagOnRe.FindStringSubmatch(text); m != nil && d.cur.File == "" {
		d.cur.File = m[1]
		d.cur.Line, _ = strconv.Atoi(m[2])
		return
	}
	if strings.TrimSpace(text) == "" || diagSnippetRe.MatchString(text) {
		return
	}
	d.detail = append(d.detail, strings.TrimSpace(text))
}

// end completes the diagnostic being read.
func (d *textDiagnostics) end() {
	if d.cur == nil {
		return
	}
	d.cur.Detail = strings.Join(d.detail, " ")
	if d.cur.Severity == "error" {
		d.tr.mu.Lock()
		d.tr.diags = append(d.tr.diags, *d.cur)
		d.tr.mu.Unlock()
	}
	d.cur, d.detail = nil, nil
}

// flush completes a diagnostic the output ended in.
func (d *textDiagnostics) flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.end()
}
