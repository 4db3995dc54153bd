package activities

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// TestCredentialSetsReachTheStep: a task's credential set reaches
// Terraform as the task's own secrets do (env and var file), masked in
// logs and outputs; each step fetches it as it is then, so a set changed
// since refuses the step, and a task may not override a set's values.
func TestCredentialSetsReachTheStep(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.r.Credentials = store.LocalCredentials{Store: f.plans}
	// The set has oidc: each step that runs task code gets a token.
	tokens := &fakeTokens{token: "oidc-tok-1f2e3d4c5b6a"}
	f.r.Tokens = tokens
	ctx := context.Background()
	const token, apiKey = "cred-tok-4a5b6c7d", "cred-key-8e9f0a1b"
	// The token as Terraform's TF_VAR_token: variable token.
	sealedEnv, err := f.box.Seal(task.Secrets{Env: map[string]string{"API_KEY": apiKey, "TF_VAR_token": token}})
	if err != nil {
		t.Fatal(err)
	}
	set := store.CredentialSet{Org: "acme", Name: "leaky", SealedEnv: sealedEnv, EnvNames: []string{"API_KEY", "TF_VAR_token"},
		Agents: []string{"agent-*"}, Runners: []string{"test"},
		OIDC: &store.CredentialOIDC{Provider: "generic", Audience: "https://relying.example"}, CreatedBy: "admin", UpdatedBy: "admin"}
	if _, _, err := f.plans.PutCredentialSet(ctx, set, store.CredentialKeep{}); err != nil {
		t.Fatal(err)
	}
	// A task of agent-1 naming the set, indexed as the API indexes it.
	newTask := func(s task.Secrets) StepInput {
		in := f.newTask(task.Params{Module: "leak", Credentials: []string{"leaky"}}, s)
		in.Task.AgentID = "agent-1"
		now := time.Now()
		if err := f.plans.CreateTask(ctx, store.Task{ID: in.Task.ID, Org: "acme", AgentID: "agent-1", RunnerID: "test",
			Status: task.StatusRunning, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		return in
	}

	in := newTask(task.Secrets{})
	f.upTo(&in, true)
	var applied ApplyOutput
	f.mustExec("Apply", in, &applied)
	if applied.Outputs["echoed"] != "token was ***" {
		t.Errorf("output = %v, want the set's token masked", applied.Outputs["echoed"])
	}
	logs := f.sink.text(in.Task.ID)
	if strings.Contains(logs, token) || strings.Contains(logs, apiKey) {
		t.Fatalf("a set's value in the logs:\n%s", logs)
	}
	if !strings.Contains(logs, "token=*** key=***") || !strings.Contains(logs, "credential sets: leaky") {
		t.Errorf("the set's values did not reach Terraform, or the step does not say which sets it got:\n%s", logs)
	}
	if strings.Contains(logs, tokens.token) {
		t.Fatalf("the OIDC token in the logs:\n%s", logs)
	}
	if got := tokens.phases(); !slices.Contains(got, "leaky/plan") || !slices.Contains(got, "leaky/apply") {
		t.Errorf("token requests %v, want plan and apply tokens of set leaky", got)
	}
	if _, err := os.Stat(filepath.Join(f.r.DataDir, "work", in.Task.ID, ".terratask", "oidc", "leaky")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the token's directory outlived the step: %v", err)
	}

	// The set changes: the next step of a task is refused, naming it.
	in = newTask(task.Secrets{})
	f.upTo(&in, false)
	set.Agents = []string{"deploy-*"}
	if _, _, err := f.plans.PutCredentialSet(ctx, set, store.CredentialKeep{Env: true, Variables: true}); err != nil {
		t.Fatal(err)
	}
	appErr, te := taskErrorOf(t, f.exec(nil, "Plan", in, nil))
	if appErr.Type() != task.CodeConfig || !appErr.NonRetryable() || !strings.Contains(te.Message, "credential set leaky") ||
		!strings.Contains(te.Message, `agent "agent-1"`) {
		t.Errorf("a set that no longer serves the task: %s %q", appErr.Type(), te.Message)
	}

	// A task's own value may not override a set's.
	set.Agents = nil
	if _, _, err := f.plans.PutCredentialSet(ctx, set, store.CredentialKeep{Env: true, Variables: true}); err != nil {
		t.Fatal(err)
	}
	in = newTask(task.Secrets{Env: map[string]string{"API_KEY": "mine-1234"}})
	var inst InstallOutput
	f.mustExec("Install", in, &inst) // runs no task code: fetches no set
	in.TerraformPath = inst.TerraformPath
	appErr, te = taskErrorOf(t, f.exec(nil, "Init", in, nil))
	if appErr.Type() != task.CodeConfig || !strings.Contains(te.Message, "API_KEY is set by both the task and credential set leaky") ||
		strings.Contains(te.Message, "mine-1234") {
		t.Errorf("a clash: %s %q", appErr.Type(), te.Message)
	}

	// A runner without an issuer's tokens fails the steps of a set with
	// oidc, saying so.
	f.r.Tokens = nil
	appErr, te = taskErrorOf(t, f.exec(nil, "Init", newTask(task.Secrets{}), nil))
	if appErr.Type() != task.CodeConfig || !strings.Contains(te.Message, "leaky") || !strings.Contains(te.Message, "--oidc-issuer") {
		t.Errorf("no token source: %s %q", appErr.Type(), te.Message)
	}

	// A runner without a way to fetch sets fails the task's steps.
	f.r.Credentials = nil
	appErr, te = taskErrorOf(t, f.exec(nil, "Init", newTask(task.Secrets{}), nil))
	if appErr.Type() != task.CodeInternal || !strings.Contains(te.Message, "leaky") {
		t.Errorf("no credential source: %s %q", appErr.Type(), te.Message)
	}
}

// fakeCredentials answers what a test says.
type fakeCredentials struct {
	sets []store.CredentialDelivery
	err  error
	got  store.CredentialRequest
}

func (f *fakeCredentials) TaskCredentials(_ context.Context, req store.CredentialRequest) ([]store.CredentialDelivery, error) {
	f.got = req
	return f.sets, f.err
}

func TestWithCredentials(t *testing.T) {
	box := newFixture(t).box
	seal := func(s task.Secrets) string {
		v, err := box.Seal(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a := store.CredentialDelivery{Name: "a", SealedEnv: seal(task.Secrets{Env: map[string]string{"A": "1a"}}),
		SealedVariables: seal(task.Secrets{SensitiveVariables: map[string]any{"va": "x"}}), OIDC: &store.CredentialOIDC{Provider: "aws"}}
	b := store.CredentialDelivery{Name: "b", SealedEnv: seal(task.Secrets{Env: map[string]string{"TF_VAR_vb": "2b"}})}
	src := &fakeCredentials{sets: []store.CredentialDelivery{a, b}}
	r := &Runner{Org: "acme", RunnerID: "r1", Secrets: box, Credentials: src}
	in := task.Input{ID: "task-1", Org: "acme", CredentialSets: []string{"a", "b"}, Params: task.Params{Credentials: []string{"a"}}}
	own := task.Secrets{Env: map[string]string{"MINE": "m"}}
	got, delivered, err := r.withCredentials(context.Background(), in, own)
	if err != nil {
		t.Fatal(err)
	}
	// A set's TF_VAR_vb is variable vb, in the var file.
	if got.Env["A"] != "1a" || got.SensitiveVariables["vb"] != "2b" || got.Env["TF_VAR_vb"] != "" || got.Env["MINE"] != "m" ||
		got.SensitiveVariables["va"] != "x" || len(own.Env) != 1 || checkTaskEnv(got.Env) != nil {
		t.Fatalf("merged %+v (own %+v)", got, own)
	}
	if len(delivered) != 2 || delivered[0].OIDC == nil || delivered[0].SealedEnv != "" {
		t.Fatalf("delivered %+v", delivered)
	}
	// The request: the input's sets, its own workspace, the runner's org
	// and ID.
	if want := (store.CredentialRequest{Org: "acme", RunnerID: "r1", TaskID: "task-1", Workspace: "task-1", Sets: []string{"a", "b"}}); strings.Join(src.got.Sets, ",") != "a,b" ||
		src.got.Org != want.Org || src.got.RunnerID != want.RunnerID || src.got.TaskID != want.TaskID || src.got.Workspace != want.Workspace {
		t.Fatalf("request %+v", src.got)
	}
	// No sets: nothing fetched.
	src.got = store.CredentialRequest{}
	if got, _, err := r.withCredentials(context.Background(), task.Input{ID: "task-2"}, own); err != nil || got.Env["MINE"] != "m" || src.got.TaskID != "" {
		t.Fatalf("a task without sets: %+v %v %+v", got, err, src.got)
	}
	// Two sets may not give one variable (an env TF_VAR_x gives x).
	src.sets = []store.CredentialDelivery{a, {Name: "c", SealedEnv: seal(task.Secrets{Env: map[string]string{"TF_VAR_va": "y"}})}}
	in.CredentialSets = []string{"a", "c"}
	if _, _, err := r.withCredentials(context.Background(), in, own); err == nil || !strings.Contains(err.Error(), "va is set by both credential set a and credential set c") {
		t.Fatalf("two sets clash: %v", err)
	}
	// A refusal is the task's configuration; a failed fetch may be retried.
	src.err = &store.CredentialRefusedError{Set: "a", Scope: store.ScopeWorkspaces, Value: "task-1"}
	if _, _, err := r.withCredentials(context.Background(), in, own); err == nil || err.(*stepError).code != task.CodeConfig {
		t.Fatalf("refused: %v", err)
	}
	src.err = context.DeadlineExceeded
	if _, _, err := r.withCredentials(context.Background(), in, own); err == nil || !err.(*stepError).retryable {
		t.Fatalf("a failed fetch: %v", err)
	}
	// Values sealed under another org's key do not open.
	src.err = nil
	src.sets = []store.CredentialDelivery{{Name: "a", SealedEnv: "bm90IHNlYWxlZA=="}, b}
	if _, _, err := r.withCredentials(context.Background(), in, own); err == nil || !strings.Contains(err.Error(), "cannot open credential set a") {
		t.Fatalf("unopenable: %v", err)
	}
	for step, want := range map[task.Step]bool{task.StepInstalling: false, task.StepInitializing: true, task.StepPlanning: true,
		task.StepApplying: true, task.StepDestroying: true, stepCleanup: false} {
		if usesCredentials(step) != want {
			t.Errorf("usesCredentials(%s) = %v", step, !want)
		}
	}
}

// fakeTokens mints the same token for every request, and records them.
type fakeTokens struct {
	token string
	mu    sync.Mutex
	reqs  []store.TokenRequest
}

func (f *fakeTokens) TaskToken(_ context.Context, req store.TokenRequest) (string, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	return f.token, time.Now().Add(15 * time.Minute), nil
}

// phases are the requests' set/phase.
func (f *fakeTokens) phases() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reqs {
		out = append(out, r.Set+"/"+r.Phase)
	}
	return out
}
