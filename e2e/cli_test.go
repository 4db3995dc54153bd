package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/terratask/terratask/api"
)

// cliEnv is the environment of a CLI run against the shared dev.
func cliEnv(key string) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TERRATASK_") {
			env = append(env, kv)
		}
	}
	return append(env, "TERRATASK_ADDRESS="+shared.api, "TERRATASK_API_KEY="+key)
}

// cli runs the built binary and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = cliEnv(shared.key)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String(), errOut.String()
	case err != nil:
		t.Fatalf("running terratask %v: %v", args, err)
	}
	return 0, out.String(), errOut.String()
}

// controlChars finds what would move a terminal's cursor or colour text.
var controlChars = regexp.MustCompile(`[\x00-\x08\x0b-\x1f\x7f]`)

func TestCLICreateWaitCompletes(t *testing.T) {
	t.Parallel()
	code, out, errOut := cli(t, "tasks", "create", "--name", "cli five", "--agent", "agent-cli", "--runner", "local",
		"--file", "testdata/five/main.tf", "--var", "greeting=yo", "--metadata", "via=cli", "--wait", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	var tk api.Task
	if err := json.Unmarshal([]byte(out), &tk); err != nil {
		t.Fatalf("--output json: %v\n%s", err, out)
	}
	if tk.Status != "completed" || tk.Result == nil || tk.Result.Output["greeting"] != "yo" || tk.Metadata["via"] != "cli" {
		t.Fatalf("task %+v", tk)
	}
	// Not a terminal: plain progress lines. Which intermediate states a line
	// shows depends on when the status was polled (this apply takes tens of
	// milliseconds), so only the first and the last line are certain here;
	// TestCLIPlainProgressLines shows the resource counts of a slower one.
	if controlChars.MatchString(out + errOut) {
		t.Fatalf("control characters in non-terminal output: %q", errOut)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if lines[0] != "created "+tk.ID || !regexp.MustCompile(`^`+tk.ID+`\s+completed\s+100%`).MatchString(lines[len(lines)-1]) {
		t.Fatalf("stderr lacks the progress lines:\n%s", errOut)
	}
	// The table views of the same task.
	code, out, errOut = cli(t, "tasks", "get", tk.ID, "-o", "table")
	if code != 0 || !strings.Contains(out, "completed") || !strings.Contains(out, "Output greeting") || controlChars.MatchString(out) {
		t.Fatalf("get: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli(t, "tasks", "logs", tk.ID, "--level", "info", "-o", "table")
	if code != 0 || !strings.Contains(out, "info") {
		t.Fatalf("logs: exit %d\n%s", code, out)
	}
	code, out, _ = cli(t, "tasks", "status", tk.ID)
	var st api.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Status != "completed" {
		t.Fatalf("status (json when not a terminal): exit %d %s", code, out)
	}
}

func TestCLIFailingConfigExits1(t *testing.T) {
	t.Parallel()
	code, out, errOut := cli(t, "tasks", "create", "--name", "cli broken", "--agent", "agent-cli", "--file", "testdata/broken/main.tf", "--wait")
	if code != 1 || !strings.Contains(errOut, "failed: terraform_error: terraform plan failed: Unsupported argument") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	var tk api.Task
	if err := json.Unmarshal([]byte(out), &tk); err != nil || tk.Status != "failed" {
		t.Fatalf("stdout %s: %v", out, err)
	}
}

// TestCLICancelExits3 waits on a task that hangs in Terraform, cancels it
// from another process, and the waiting one exits 3.
func TestCLICancelExits3(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binPath, "tasks", "create", "--name", "cli hang", "--agent", "agent-cli", "--file", "testdata/hang/main.tf",
		"--var", "marker=cli-cancel-"+time.Now().Format("150405.000"), "--wait")
	cmd.Env = cliEnv(shared.key)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	id := ""
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "created task-") {
			id = strings.TrimPrefix(sc.Text(), "created ")
		}
		if id != "" && strings.Contains(sc.Text(), "applying") {
			break // Terraform is in its hanging apply
		}
	}
	if id == "" {
		t.Fatalf("no task created: %q", lines)
	}
	code, cout, cerr := cli(t, "tasks", "cancel", id, "-o", "json")
	if code != 0 {
		t.Fatalf("cancel: exit %d %s %s", code, cout, cerr)
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("the waiting create ended with %v, want exit 3\n%s", err, out.String())
	}
}

func TestCLIListOutputAndUsage(t *testing.T) {
	t.Parallel()
	// A task that stays pending (its runner is never online).
	code, out, errOut := cli(t, "tasks", "create", "--name", "cli parked", "--agent", "agent-cli-list", "--runner", "nobody-serves-this")
	var tk api.Task
	if code != 0 || json.Unmarshal([]byte(out), &tk) != nil || tk.Status != "pending" {
		t.Fatalf("create: exit %d %s %s", code, out, errOut)
	}
	code, out, errOut = cli(t, "tasks", "list", "--agent", "agent-cli-list", "--status", "pending", "-o", "json")
	var list []api.Task
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].ID != tk.ID {
		t.Fatalf("list: exit %d %s %s", code, out, errOut)
	}
	code, out, _ = cli(t, "tasks", "list", "--agent", "agent-cli-list", "-o", "table")
	if code != 0 || !strings.HasPrefix(out, "ID") || !strings.Contains(out, tk.ID) {
		t.Fatalf("table: exit %d\n%s", code, out)
	}
	// A wait that times out: exit 4, the task goes on.
	if code, _, errOut := cli(t, "tasks", "wait", tk.ID, "--timeout", "2s"); code != 4 || !strings.Contains(errOut, "still pending") {
		t.Fatalf("wait --timeout: exit %d %s", code, errOut)
	}
	if code, out, _ := cli(t, "runners", "get", "local", "-o", "json"); code != 0 || !strings.Contains(out, `"online"`) {
		t.Fatalf("runners get: exit %d %s", code, out)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"tasks", "get"}, 2, "TASK_ID"},
		{[]string{"tasks", "list", "--bogus"}, 2, "unknown flag"},
		{[]string{"tasks", "list", "--sort", "colour"}, 1, "sort"},
		{[]string{"tasks", "get", "task-nope"}, 1, "not_found"},
		{[]string{"tasks", "create", "--agent", "a"}, 2, "--name is required"},
	} {
		if code, _, errOut := cli(t, c.args...); code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errOut, c.code, c.want)
		}
	}
	if code, _, _ := cli(t, "tasks", "cancel", tk.ID); code != 0 {
		t.Fatalf("cancel: exit %d", code)
	}
}

// TestCLIPlainProgressLines: off a terminal, --wait writes a plain line per
// change it sees, with the resources done of planned while a task applies
// (each of the four resources here takes a second, one at a time).
func TestCLIPlainProgressLines(t *testing.T) {
	t.Parallel()
	code, _, errOut := cli(t, "tasks", "create", "--name", "cli plain", "--agent", "agent-cli", "--runner", "local",
		"--file", "testdata/slow/main.tf", "--var", "step_seconds=1", "--param", "parallelism=1", "--wait", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if controlChars.MatchString(errOut) || !regexp.MustCompile(`(?m)\s+running\s+\d+%\s+step applying \(step 4 of 4\)\s+[0-4] of 4 resources`).MatchString(errOut) {
		t.Fatalf("no plain line with the resource counts:\n%q", errOut)
	}
}

// TestCLIProgressInATerminal runs create --wait in a real pseudo-terminal:
// the live view redraws its line and shows the resources done of planned.
func TestCLIProgressInATerminal(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binPath, "tasks", "create", "--name", "cli tty", "--agent", "agent-cli", "--file", "testdata/slow/main.tf",
		// 2 s a resource: resource counts reach the view at the runner's
		// heartbeat tick (2 s), which a loaded CI machine can delay past a
		// 1 s resource.
		"--var", "step_seconds=2", "--param", "parallelism=1", "--wait")
	cmd.Env = append(cliEnv(shared.key), "TERM=xterm")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var screen bytes.Buffer
	_, _ = io.Copy(&screen, f) // until the process closes the terminal (EIO)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit %v\n%q", err, screen.String())
	}
	s := screen.String()
	if !strings.Contains(s, "\r") || !regexp.MustCompile(`[1-4] of 4 resources`).MatchString(s) || !strings.Contains(s, "applying") {
		t.Fatalf("no live view with resource counts:\n%q", s)
	}
	// On a terminal the result is a table, not JSON.
	if !strings.Contains(s, "Status:") || !strings.Contains(s, "completed") {
		t.Fatalf("no table of the task:\n%q", s)
	}
}
