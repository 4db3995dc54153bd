package activities

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap/zaptest"

	"github.com/terratask/terratask/internal/sandbox"
	"github.com/terratask/terratask/internal/testbin"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/sqlite"
	"github.com/terratask/terratask/task"
)

// memSink is an in-memory LogSink that, like the real store, keeps one
// entry per (task, stream, seq).
type memSink struct {
	mu      sync.Mutex
	entries map[string]store.LogEntry
	fail    bool
}

func newMemSink() *memSink { return &memSink{entries: map[string]store.LogEntry{}} }

func (m *memSink) AppendLogs(_ context.Context, es []store.LogEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("store unavailable")
	}
	for _, e := range es {
		k := fmt.Sprintf("%s|%s|%d", e.TaskID, e.Stream, e.Seq)
		if _, ok := m.entries[k]; !ok {
			m.entries[k] = e
		}
	}
	return nil
}

// all returns the entries of a task ordered by stream and seq.
func (m *memSink) all(taskID string) []store.LogEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.LogEntry
	for _, e := range m.entries {
		if e.TaskID == taskID {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Stream != out[j].Stream {
			return out[i].Stream < out[j].Stream
		}
		return out[i].Seq < out[j].Seq
	})
	return out
}

func (m *memSink) text(taskID string) string {
	var b strings.Builder
	for _, e := range m.all(taskID) {
		fmt.Fprintf(&b, "%s %d [%s] %s %v\n", e.Stream, e.Seq, e.Level, e.Message, e.Metadata)
	}
	return b.String()
}

type fixture struct {
	t      *testing.T
	r      *Runner
	sink   *memSink
	box    *secret.Box
	suite  testsuite.WorkflowTestSuite
	tfPath string
	// plans is the real SQLite store the runner keeps plans in.
	plans *sqlite.Store
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	tfPath, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform is not installed")
	}
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	box, err := secret.NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	sink := newMemSink()
	plans, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plans.Close() })
	r := &Runner{
		Org:             "acme",
		RunnerID:        "test",
		HostID:          "host-a",
		DataDir:         t.TempDir(),
		ModulesDir:      catalog,
		SourceRoots:     []string{catalog},
		Logs:            sink,
		Plans:           plans,
		Secrets:         box,
		Logger:          zaptest.NewLogger(t),
		HeartbeatEvery:  100 * time.Millisecond,
		StopGrace:       10 * time.Second,
		DisableDownload: true,
		Sandbox:         testSandbox(t),
	}
	f := &fixture{t: t, r: r, sink: sink, box: box, tfPath: tfPath, plans: plans}
	f.suite.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	return f
}

var taskSeq struct {
	sync.Mutex
	n int
}

// newTask returns a task input with a fresh ID.
func (f *fixture) newTask(p task.Params, s task.Secrets) StepInput {
	f.t.Helper()
	taskSeq.Lock()
	taskSeq.n++
	id := fmt.Sprintf("task-%s-%d", strings.ToLower(strings.ReplaceAll(f.t.Name(), "/", "-")), taskSeq.n)
	taskSeq.Unlock()
	sealed, err := f.box.Seal(s)
	if err != nil {
		f.t.Fatal(err)
	}
	return StepInput{
		Task: task.Input{ID: id, Org: "acme", RunnerID: "test", Params: p, SealedSecrets: sealed},
		Run:  1,
	}
}

// exec runs one activity in a fresh test environment; ctx, when given,
// cancels it.
func (f *fixture) exec(ctx context.Context, name string, in StepInput, result any) error {
	env := f.suite.NewTestActivityEnvironment()
	if ctx != nil {
		env.SetWorkerOptions(worker.Options{BackgroundActivityContext: ctx})
	}
	env.RegisterActivity(f.r)
	val, err := env.ExecuteActivity(name, in)
	if err == nil && result != nil {
		err = val.Get(result)
	}
	return err
}

// mustExec runs an activity that must succeed.
func (f *fixture) mustExec(name string, in StepInput, result any) {
	f.t.Helper()
	if err := f.exec(nil, name, in, result); err != nil {
		f.t.Fatalf("%s: %v\nlogs:\n%s", name, err, f.sink.text(in.Task.ID))
	}
}

// upTo runs Install and Init, and Plan when plan is set.
func (f *fixture) upTo(in *StepInput, plan bool) PlanOutput {
	f.t.Helper()
	var inst InstallOutput
	f.mustExec("Install", *in, &inst)
	in.TerraformPath = inst.TerraformPath
	f.mustExec("Init", *in, nil)
	var p PlanOutput
	if plan {
		f.mustExec("Plan", *in, &p)
	}
	return p
}

// taskErrorOf extracts the application error of a failed activity and the
// task.Error in its details.
func taskErrorOf(t *testing.T, err error) (*temporal.ApplicationError, task.Error) {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		t.Fatalf("error %v (%T) is not an application error", err, err)
	}
	var te task.Error
	if err := appErr.Details(&te); err != nil {
		t.Fatalf("details: %v", err)
	}
	return appErr, te
}

// diagnosticsOf decodes Details["diagnostics"] after its trip through the
// data converter.
func diagnosticsOf(t *testing.T, te task.Error) []map[string]any {
	t.Helper()
	raw, _ := te.Details["diagnostics"].([]any)
	var out []map[string]any
	for _, d := range raw {
		m, ok := d.(map[string]any)
		if !ok {
			t.Fatalf("diagnostic %v is not an object", d)
		}
		out = append(out, m)
	}
	return out
}

// procsWith returns the live processes whose command line contains s.
func procsWith(s string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue // gone, or a zombie
		}
		if cmd := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cmd, s) {
			out = append(out, e.Name()+": "+cmd)
		}
	}
	return out
}

// testSandbox is the runner's sandbox in tests: every step of a fixture
// runs its engine sandboxed where bubblewrap works (always on CI, where
// .ci/run installs it), else unsandboxed.
func testSandbox(t *testing.T) *sandbox.Sandbox {
	t.Helper()
	sb, err := probedSandbox()
	if err != nil {
		t.Fatal(err)
	}
	if !sb.Active() && testbin.Required() {
		t.Fatalf("the runner's sandbox is unavailable on CI: %s", sb.Reason())
	}
	return sb
}

var probedSandbox = sync.OnceValues(func() (*sandbox.Sandbox, error) {
	return sandbox.New(context.Background(), sandbox.Options{Mode: sandbox.Auto})
})
