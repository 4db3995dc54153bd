package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/client"
	"github.com/terratask/terratask/task"
)

func (o *options) waitCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait TASK_ID",
		Short: "Show a task's progress until it ends; the exit code says how",
		Long: `Show a task's progress until it ends (a live view on a terminal, a line per change
otherwise), then the task. Exits 0 when it completed, 1 when it failed, 3 when it was
cancelled or its plan rejected, 4 when --timeout passed first (the task goes on).`,
		Args: exactArgs(1, "TASK_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, asJSON, err := o.setup()
			if err != nil {
				return err
			}
			return o.waitFor(cmd.Context(), c, args[0], timeout, asJSON)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up waiting after this long (exit 4); 0 waits as long as it takes")
	return cmd
}

// waitFor waits for the task with a progress view on stderr, prints it, and
// returns the exit its end calls for.
func (o *options) waitFor(ctx context.Context, c *client.Client, id string, timeout time.Duration, asJSON bool) error {
	waitCtx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	view := newView(o.env.Stderr, id)
	var last api.Status
	t, err := c.Wait(waitCtx, id, client.OnStatus(func(st api.Status) { last = st; view.update(st) }))
	view.finish()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return &ExitError{Code: ExitTimeout, Err: fmt.Errorf("task %s is still %s after %s (it goes on: terratask tasks wait %s)", id, last.Status, timeout, id)}
		}
		return apiFailure(err)
	}
	if err := o.printTask(t, asJSON); err != nil {
		return err
	}
	switch t.Status {
	case task.StatusCompleted:
		return nil
	case task.StatusCancelled, task.StatusRejected:
		return &ExitError{Code: ExitCancelled, Err: fmt.Errorf("task %s %s", id, t.Status)}
	}
	msg := fmt.Sprintf("task %s %s", id, t.Status)
	if t.Result != nil && t.Result.Error != nil {
		msg += ": " + t.Result.Error.Code + ": " + sanitize(t.Result.Error.Message)
	}
	return &ExitError{Code: ExitFailed, Err: errors.New(msg)}
}

// progress is what a status says of a task's advance.
type progress struct {
	status           task.Status
	percent          int
	step             string
	stepsDone, steps int
	planned, done    int
	waitingFor       string
}

func progressOf(st api.Status) progress {
	num := func(k string) int {
		f, _ := st.Metadata[k].(float64)
		return int(f)
	}
	str := func(k string) string { s, _ := st.Metadata[k].(string); return sanitize(s) }
	return progress{status: st.Status, percent: st.Progress, step: str("current_step"), stepsDone: num("steps_completed"),
		steps: num("total_steps"), planned: num("planned_changes"), done: num("changes_done"), waitingFor: str("waiting_for")}
}

// stepText: "applying (step 4 of 4)".
func (p progress) stepText() string {
	if p.step == "" {
		return "-"
	}
	if p.steps > 0 {
		return fmt.Sprintf("%s (step %d of %d)", p.step, min(p.stepsDone+1, p.steps), p.steps)
	}
	return p.step
}

// resourcesText: "3 of 5 resources".
func (p progress) resourcesText() string {
	if p.planned == 0 && p.done == 0 {
		return "-"
	}
	return fmt.Sprintf("%d of %d resources", p.done, p.planned)
}

// line is the progress in one line of plain text.
func (p progress) line() string {
	parts := []string{string(p.status), fmt.Sprintf("%d%%", p.percent)}
	if p.step != "" {
		parts = append(parts, "step "+p.stepText())
	}
	if r := p.resourcesText(); r != "-" {
		parts = append(parts, r)
	}
	if p.waitingFor != "" {
		parts = append(parts, "waiting for "+p.waitingFor)
	}
	if p.status == task.StatusWaitingApproval {
		parts = append(parts, "a person approves or rejects its plan")
	}
	return strings.Join(parts, "  ")
}

// view shows a task's progress while it runs.
type view interface {
	update(api.Status)
	finish()
}

// newView is a live bar on a terminal, plain lines otherwise.
func newView(w io.Writer, id string) view {
	start := time.Now()
	if isTerminal(w) {
		return &barView{id: id, w: w, bar: progressbar.NewOptions(100,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetWidth(24),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionSetDescription(id+"  waiting"),
		)}
	}
	return &lineView{w: w, id: id, start: start}
}

// barView redraws one line: a bar of the task's percent, the elapsed time,
// the step and the resources done of planned.
type barView struct {
	id  string
	w   io.Writer
	bar *progressbar.ProgressBar
}

func (v *barView) update(st api.Status) {
	p := progressOf(st)
	v.bar.Describe(v.id + "  " + p.line())
	_ = v.bar.Set(p.percent)
}

func (v *barView) finish() {
	_ = v.bar.Exit()
	fmt.Fprintln(v.w)
}

// lineView writes a line when the progress changes: no control characters,
// for logs and pipes.
type lineView struct {
	w     io.Writer
	id    string
	start time.Time
	last  string
}

func (v *lineView) update(st api.Status) {
	l := progressOf(st).line()
	if l == v.last {
		return
	}
	v.last = l
	fmt.Fprintf(v.w, "%s  %s  %s elapsed\n", v.id, l, time.Since(v.start).Round(time.Second))
}

func (v *lineView) finish() {}

// sanitize drops control characters from text the server sent, so nothing
// it says can move a terminal's cursor.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return -1
		}
		return r
	}, s)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
