// Package task defines the terratask task model shared by the HTTP server, the
// task workflow and the runners: the workflow's type name, its single input and
// output structs, statuses, steps, task queue names and search attributes.
//
// Other Temporal applications import this package to run a terratask task as a
// child workflow by name:
//
//	workflow.ExecuteChildWorkflow(ctx, task.WorkflowType, task.Input{...})
//
// The package is a leaf: it imports nothing of terratask and no Temporal code.
package task

import (
	"strings"
	"time"
)

// WorkflowType is the stable, registered type name of the task workflow.
const WorkflowType = "terratask.Task"

// ControlPlaneTaskQueue is where the task workflow itself runs, so status
// queries and cancellation work while a runner is down.
const ControlPlaneTaskQueue = "terratask-control"

// QueryState is the query type that returns a task's State.
const QueryState = "state"

// SignalProgress is the signal a runner sends with resource counts while a
// step runs, so progress moves inside a long plan or apply.
const SignalProgress = "progress"

// runnerQueuePrefix starts the name of every runner's task queue.
const runnerQueuePrefix = "terratask-runner-"

// RunnerTaskQueue is the task queue shared by every runner process of org
// with this ID: runner IDs are per org, so org B's runner "r1" is not org
// A's. '/' separates the two: no org name or runner ID holds one.
func RunnerTaskQueue(org, runnerID string) string {
	return runnerQueuePrefix + org + "/" + runnerID
}

// LegacyRunnerTaskQueue is the queue of runner runnerID before runners
// belonged to an org (workflow version "org-runners"): tasks started before
// it still name it, and no runner serves it any more.
func LegacyRunnerTaskQueue(runnerID string) string { return runnerQueuePrefix + runnerID }

// HostTaskQueue is the queue of one runner host; steps after the first are
// pinned to it.
func HostTaskQueue(org, runnerID, hostID string) string {
	return RunnerTaskQueue(org, runnerID) + "@" + hostID
}

// QueueOrg is the org of a runner's queue or of one of its hosts' queues,
// or "" for any other queue (the control plane's, a legacy runner queue).
func QueueOrg(queue string) string {
	rest, ok := strings.CutPrefix(queue, runnerQueuePrefix)
	if !ok {
		return ""
	}
	org, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return org
}

// Search attribute names upserted at each transition.
const (
	SearchAttrStatus = "TerrataskStatus"
	SearchAttrAgent  = "TerrataskAgent"
	SearchAttrRunner = "TerrataskRunner"
	SearchAttrOrg    = "TerrataskOrg"
)

// SearchAttributes lists the custom keyword search attributes terratask needs
// registered in its namespace.
var SearchAttributes = []string{SearchAttrStatus, SearchAttrAgent, SearchAttrRunner, SearchAttrOrg}

// Status of a task.
type Status string

// Task statuses. Completed, Failed, Cancelled and Rejected are terminal.
const (
	StatusPending Status = "pending"
	StatusRunning Status = "running"
	// StatusWaitingApproval: the task planned changes and waits for a
	// person to approve or reject its plan (see Approval).
	StatusWaitingApproval Status = "waiting_approval"
	StatusCancelling      Status = "cancelling"
	StatusCompleted       Status = "completed"
	StatusFailed          Status = "failed"
	StatusCancelled       Status = "cancelled"
	// StatusRejected: its plan was rejected, or the approval timed out.
	StatusRejected Status = "rejected"
)

// Statuses lists every status in lifecycle order.
var Statuses = []Status{StatusPending, StatusRunning, StatusWaitingApproval, StatusCancelling,
	StatusCompleted, StatusFailed, StatusCancelled, StatusRejected}

// Terminal reports whether no further transition can happen.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled || s == StatusRejected
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if v == s {
			return true
		}
	}
	return false
}

// Step is one stage of a task's Terraform run.
type Step string

// Steps in run order. A task runs installing, initializing, planning and then
// applying or destroying; a plan-only task stops after planning.
const (
	StepInstalling   Step = "installing"
	StepInitializing Step = "initializing"
	StepPlanning     Step = "planning"
	StepApplying     Step = "applying"
	StepDestroying   Step = "destroying"
)

// Action is what a task does with its configuration.
type Action string

// Actions a task may take.
const (
	ActionApply   Action = "apply"
	ActionPlan    Action = "plan"
	ActionDestroy Action = "destroy"
)

// Steps returns the ordered steps an action runs.
func (a Action) Steps() []Step {
	switch a {
	case ActionPlan:
		return []Step{StepInstalling, StepInitializing, StepPlanning}
	case ActionDestroy:
		return []Step{StepInstalling, StepInitializing, StepPlanning, StepDestroying}
	default:
		return []Step{StepInstalling, StepInitializing, StepPlanning, StepApplying}
	}
}

// Input is the task workflow's single argument.
type Input struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	AgentID     string `json:"agent_id"`
	RunnerID    string `json:"runner_id"`
	Org         string `json:"org"`
	// Plain is set by the control plane's data converter (package codec/control)
	// when the input reached it unencrypted: the workflow refuses such a
	// task (anyone who reaches the Temporal namespace could send one, for
	// any org). Never part of the JSON contract.
	Plain     bool           `json:"-"`
	Metadata  map[string]any `json:"metadata,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	CreatedBy string         `json:"created_by,omitempty"`
	Params    Params         `json:"params"`
	// RunnerWait bounds how long the task waits for its runner to pick it up
	// before failing with runner_unavailable (0: the workflow's default).
	RunnerWait Duration `json:"runner_wait,omitempty"`
	// SealedSecrets holds sensitive_variables and env, encrypted (see package
	// secret) so they never sit in Temporal history in plain text.
	SealedSecrets string `json:"sealed_secrets,omitempty"`
	// ApprovalWait is the server's default for Params.ApprovalTimeout (0:
	// the workflow's default, 24h).
	ApprovalWait Duration `json:"approval_wait,omitempty"`
	// ScheduleID names the schedule that started the task, if any.
	ScheduleID string `json:"schedule_id,omitempty"`
	// Authors are the keys that wrote what a scheduled task runs: the
	// schedule's creator, then each key that changed its template, each
	// once (CreatedBy is the one that wrote it last). Four eyes refuses
	// each of them as an operator approver, as it refuses CreatedBy. Empty
	// for a task created directly, whose only author is CreatedBy.
	Authors []string `json:"authors,omitempty"`
	// Key is the API key that created the task, as policies see it
	// (input.terratask.key): set by the API from the authenticated key,
	// and by schedules from the key that wrote the template last. A task
	// started by a parent workflow has the key its input names.
	Key *KeyRef `json:"key,omitempty"`
	// CredentialSets are the credential sets the task uses, by name: those
	// its Params.Credentials names, then those that attach themselves to
	// its workspace, resolved by the API at create (a schedule's template
	// when it is written). Each step fetches their values, sealed, when it
	// starts. Nil for a task no API resolved (a parent workflow's): its
	// Params.Credentials then (CredentialSetNames).
	CredentialSets []string `json:"credential_sets,omitempty"`
}

// CredentialSetNames are the credential sets the task uses: CredentialSets,
// or Params.Credentials when nothing resolved them; never nil.
func (in Input) CredentialSetNames() []string {
	names := in.CredentialSets
	if names == nil {
		names = in.Params.Credentials
	}
	if names == nil {
		return []string{}
	}
	return names
}

// KeyRef names an API key and what it may do.
type KeyRef struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	Agent string `json:"agent,omitempty"`
}

// Params are the Terraform parameters of a task (the seed's "parameters").
type Params struct {
	Action           Action            `json:"action,omitempty"`
	Module           string            `json:"module,omitempty"`
	Source           string            `json:"source,omitempty"`
	Files            map[string]string `json:"files,omitempty"`
	Variables        map[string]any    `json:"variables,omitempty"`
	Workspace        string            `json:"workspace,omitempty"`
	TerraformVersion string            `json:"terraform_version,omitempty"`
	Targets          []string          `json:"targets,omitempty"`
	Replace          []string          `json:"replace,omitempty"`
	RefreshOnly      bool              `json:"refresh_only,omitempty"`
	Parallelism      int               `json:"parallelism,omitempty"`
	Timeout          Duration          `json:"timeout,omitempty"`
	// RunnerTimeout overrides the server's wait for a runner to pick the
	// task up (runner_unavailable after it).
	RunnerTimeout Duration `json:"runner_timeout,omitempty"`
	// Approval says which plans wait for a person before they apply
	// (default ApprovalNone); ApprovalTimeout bounds the wait (default: the
	// server's, Input.ApprovalWait).
	Approval        Approval `json:"approval,omitempty"`
	ApprovalTimeout Duration `json:"approval_timeout,omitempty"`
	// Notify is the task's own callback (see Notify).
	Notify *Notify `json:"notify,omitempty"`
	// DetectDrift makes a plan-only task report drift in its result;
	// Remediate ("approval") then starts an apply task that waits for
	// approval when drift was found.
	DetectDrift bool   `json:"detect_drift,omitempty"`
	Remediate   string `json:"remediate,omitempty"`
	// Engine runs the task with Terraform (default) or OpenTofu;
	// TofuVersion pins OpenTofu's version as TerraformVersion pins
	// Terraform's.
	Engine      Engine `json:"engine,omitempty"`
	TofuVersion string `json:"tofu_version,omitempty"`
	// Credentials names the org's credential sets the task uses (see
	// Input.CredentialSets): their values reach the task's steps as its
	// own env and sensitive_variables do, never through its input.
	Credentials []string `json:"credentials,omitempty"`
}

// Engine is the infrastructure-as-code binary a task runs.
type Engine string

// Engines a runner may offer.
const (
	EngineTerraform Engine = "terraform"
	EngineOpenTofu  Engine = "opentofu"
)

// EffectiveEngine is the engine with its default applied.
func (p Params) EffectiveEngine() Engine {
	if p.Engine == "" {
		return EngineTerraform
	}
	return p.Engine
}

// Notify is a task's own callback: its events are POSTed to URL, signed
// like webhooks. Events empty means every task event.
type Notify struct {
	URL    string      `json:"url"`
	Events []EventType `json:"events,omitempty"`
}

// EffectiveAction is the action with its default applied.
func (p Params) EffectiveAction() Action {
	if p.Action == "" {
		return ActionApply
	}
	return p.Action
}

// Secrets are the values that must never reach logs, API output or plain
// Temporal payloads.
type Secrets struct {
	SensitiveVariables map[string]any    `json:"sensitive_variables,omitempty"`
	Env                map[string]string `json:"env,omitempty"`
}

// Empty reports whether there is nothing to seal.
func (s Secrets) Empty() bool { return len(s.SensitiveVariables) == 0 && len(s.Env) == 0 }

// Output is the task workflow's result.
type Output struct {
	Status Status `json:"status"`
	Result Result `json:"result"`
}

// Result is the seed's task result: outputs on success, an error on failure.
type Result struct {
	Output map[string]any `json:"output"`
	Error  *Error         `json:"error"`
	// Drift is set for a plan-only task with detect_drift (see Drift).
	Drift *Drift `json:"drift,omitempty"`
}

// Error is a task failure in the seed's error shape.
type Error struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

// Stable task error codes.
const (
	CodeTerraform         = "terraform_error"
	CodeConfig            = "configuration_error"
	CodeInstall           = "install_failed"
	CodeRunnerUnavailable = "runner_unavailable"
	CodeTimeout           = "timeout"
	CodeInternal          = "internal"
	CodeCancelled         = "cancelled"
	// CodeRejected: a person rejected the task's plan.
	CodeRejected = "rejected"
	// CodeApprovalTimeout: nobody decided on the plan within its
	// approval_timeout.
	CodeApprovalTimeout = "approval_timeout"
	// CodePlanStale: the state changed between the plan and its apply
	// (for example a manual state push), so the approved plan is not
	// applied.
	CodePlanStale = "plan_stale"
	// CodeEngineUnavailable: the task's runner lacks the engine (or the
	// version) the task names.
	CodeEngineUnavailable = "engine_unavailable"
	// CodePolicyDenied: a policy of the task's org denied it (its deny
	// rules' messages are in the error's details); nothing was applied.
	CodePolicyDenied = "policy_denied"
	// CodePolicyError: the org's policies could not be evaluated (a
	// runtime error, or the one-second limit): the task fails closed.
	CodePolicyError = "policy_error"
)

// Diagnostic is one of Terraform's diagnostics, kept in Error.Details.
type Diagnostic struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail,omitempty"`
	Address  string `json:"address,omitempty"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
}

// State is a task's live state, returned by the QueryState query.
type State struct {
	ID             string     `json:"id"`
	Status         Status     `json:"status"`
	Progress       int        `json:"progress"`
	CurrentStep    Step       `json:"current_step,omitempty"`
	StepsCompleted int        `json:"steps_completed"`
	TotalSteps     int        `json:"total_steps"`
	PlannedChanges int        `json:"planned_changes"`
	ChangesDone    int        `json:"changes_done"`
	Attempt        int        `json:"attempt"`
	Host           string     `json:"host,omitempty"`
	WaitingFor     string     `json:"waiting_for,omitempty"`
	StartedAt      *time.Time `json:"started_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	CompletedAt    *time.Time `json:"completed_at"`
	CancelledAt    *time.Time `json:"cancelled_at,omitempty"`
	CancelledBy    string     `json:"cancelled_by,omitempty"`
	Result         *Result    `json:"result,omitempty"`
	// CreatedBy is the input's CreatedBy: the name of the key that
	// created the task (four eyes: an operator key never approves it).
	CreatedBy string `json:"created_by,omitempty"`
	// Authors is the input's Authors.
	Authors []string `json:"authors,omitempty"`
	// Plan summarises the task's saved plan once it planned.
	Plan *PlanSummary `json:"plan,omitempty"`
	// Approval is the review of the plan: its deadline while the task
	// waits, then the decision.
	Approval *ApprovalState `json:"approval,omitempty"`
	// Policy is the latest policy check of the task (nil: none ran, or the
	// org has no policies).
	Policy *PolicyCheck `json:"policy,omitempty"`
}

// WrittenBy reports whether key wrote the task: it created it, or wrote
// the template of the schedule that started it (four eyes: an operator key
// never approves the plan of a task it wrote).
func (s State) WrittenBy(key string) bool {
	if key == s.CreatedBy {
		return true
	}
	for _, a := range s.Authors {
		if a == key {
			return true
		}
	}
	return false
}

// Duration is a time.Duration that reads and writes as a Go duration string
// ("30m", "1h30m").
type Duration time.Duration

// MarshalText writes the duration as a string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// CancelRequest is sent with SignalCancel just before the workflow is
// cancelled, so the task records who cancelled it.
type CancelRequest struct {
	By    string    `json:"by"`
	At    time.Time `json:"at"`
	Force bool      `json:"force,omitempty"`
}

// SignalCancel carries a CancelRequest.
const SignalCancel = "cancel-request"
