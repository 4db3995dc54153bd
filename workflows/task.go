// Package workflows holds the terratask task workflow, registered under the
// stable type name task.WorkflowType.
//
// The workflow runs on the control-plane task queue. It claims a host of the
// task's runner through the runner's shared queue, then runs the remaining
// steps (installing, initializing, planning, applying or destroying) on that
// host's own queue. If the host disappears, the block restarts on another host
// of the same runner. Every transition is recorded in the store (a local
// activity), upserted into search attributes, and answered by the state query.
//
// A task whose approval parameter makes its plan wait holds between planning
// and applying, on a durable timer and without any activity, until a person
// decides (the task.UpdateDecision update, or the task.SignalDecision signal
// of a parent workflow), the approval timeout passes, or it is cancelled;
// approved, exactly the saved plan is applied (approval.go).
//
// Other Temporal applications run it as a child workflow by name:
//
//	var out task.Output
//	err := workflow.ExecuteChildWorkflow(ctx, task.WorkflowType, in).Get(ctx, &out)
//
// A completed task returns task.Output. A failed task returns a non-retryable
// ApplicationError whose type is the task error code and whose details hold
// the task.Error; a cancelled task returns a CanceledError.
package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/terratask/terratask/activities"
	"github.com/terratask/terratask/codec"
	"github.com/terratask/terratask/controlplane"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/task"
)

// Options configure the workflows a worker registers.
type Options struct {
	// CheckDecision reports whether a decision on the plan of task taskID
	// carries a valid proof (secret.Box.CheckDecision). A task started in
	// the decision-proof version refuses decisions without one; nil checks
	// nothing (a worker without the secret key).
	CheckDecision func(taskID string, d task.Decision) bool
}

// Register registers the task workflow under its stable name.
func Register(r worker.WorkflowRegistry, opts ...Options) {
	var o Options
	for _, x := range opts {
		o = x
	}
	taskWorkflow := Task
	if o.CheckDecision != nil {
		check := o.CheckDecision
		taskWorkflow = func(ctx workflow.Context, in task.Input) (task.Output, error) {
			return runTask(ctx, in, check)
		}
	}
	r.RegisterWorkflowWithOptions(taskWorkflow, workflow.RegisterOptions{Name: task.WorkflowType})
	r.RegisterWorkflowWithOptions(WorkspaceQueue, workflow.RegisterOptions{Name: task.WorkspaceWorkflowType})
	r.RegisterWorkflowWithOptions(Delivery, workflow.RegisterOptions{Name: events.WorkflowType})
}

// Tunables of the workflow. They are constants of this workflow version:
// changing one changes timer and activity commands and needs GetVersion.
const (
	// maxRuns bounds how often the runner block restarts on another host.
	maxRuns = 5
	// hostScheduleToStart is how long a step waits for its pinned host
	// before the block moves to another host. A live host polls its queue
	// all the time, so this is short; a restarted host is back well within it.
	hostScheduleToStart = 15 * time.Second
	// stepHeartbeatTimeout is how long a silent step counts as alive
	// (runners heartbeat every 2 s).
	stepHeartbeatTimeout = 10 * time.Second
	// claimHeartbeatTimeout is the claim's, in the lease version: a claim
	// that a frozen host's open poll took is retried after it, so it is
	// short (the claim heartbeats every 2 s like a step).
	claimHeartbeatTimeout = 5 * time.Second
	// defaultRunnerWait is how long a task waits for a runner when its input
	// says nothing.
	defaultRunnerWait = 24 * time.Hour
	// defaultTimeout bounds a task's steps when its input says nothing.
	defaultTimeout = 24 * time.Hour
	// stopGrace is what a step gets beyond the task's timeout to stop.
	stopGrace = 2 * time.Minute
)

// nonRetryable are the activity error types that retrying cannot fix.
var nonRetryable = []string{task.CodeConfig, task.CodeTerraform, task.CodeInstall}

// versionFast guards the claim-install version of the command sequence:
// the claim also installs (no Install activity), the transitions that follow
// the claim share one Record, the first transition upserts no search
// attributes the start set, and a successful apply removes the work dir
// itself (no Cleanup activity). Histories recorded before it replay without
// it.
const versionFast = "claim-install"

// versionLease guards the host-lease version (issue 27: runner hosts
// frozen by SIGSTOP). The claim has a heartbeat timeout and a retry policy
// of its own, so a claim swallowed by a frozen host's open poll on the
// runner's shared queue is retried on it after claimHeartbeatTimeout, not
// after the claim's minute; a host step's heartbeat timeout is not retried
// (hostNonRetryable): retried, it would go to the same host's queue, where
// a frozen host's still open polls take it and, when the host wakes, run
// several attempts at once in one work dir; the block restarts on another
// host instead; and each new block's claim names the hosts lost in earlier
// blocks (StepInput.AvoidHosts), which leave the claim to another host of
// the runner. Histories recorded before it replay without it.
const versionLease = "lease"

// timeoutHeartbeat is the non-retryable error type that stops Temporal
// from retrying an activity whose heartbeat timed out: the server
// (common/retrypolicy, v1.32) matches a timeout failure against
// "TemporalTimeout:" + its timeout type. The SDK's test environment does
// not: it retries every heartbeat timeout.
const timeoutHeartbeat = "TemporalTimeout:Heartbeat"

// hostNonRetryable are the non-retryable error types of host steps in the
// lease version: a heartbeat timeout means the host is lost.
var hostNonRetryable = append(append([]string{}, nonRetryable...), timeoutHeartbeat)

// claimRetry is the claim's retry policy in the lease version: quick
// retries (a refusal of an avoided host, a claim of a frozen host), ten
// attempts, so a runner whose only host was lost still gets the task once
// the claim's avoidance (activities.Runner.Claim) gives way.
var claimRetry = temporal.RetryPolicy{
	InitialInterval:        time.Second,
	BackoffCoefficient:     2,
	MaximumInterval:        5 * time.Second,
	MaximumAttempts:        10,
	NonRetryableErrorTypes: nonRetryable,
}

// versionProof guards the decision-proof version (issue 20): a decision,
// by update or by signal, counts only with a proof made with the control
// plane's secret key (secret.Box.Sign; the API signs its own). The update
// validator refuses one without (validators do not run on replay); the
// signal handler records its check as a side effect, so a replay under
// another key decides as the run did. Histories recorded before it replay
// without it.
const versionProof = "decision-proof"

// versionOrgRunners guards the org-runners version (issue 20): runner IDs
// are per org, and a task's claim goes to its org's runner queue
// (task.RunnerTaskQueue), whose payloads are encrypted under the org's key
// (package codec/control). Before it, the claim went to task.LegacyRunnerTaskQueue.
const versionOrgRunners = "org-runners"

// Task is the task workflow, checking no decision proofs (see Register).
func Task(ctx workflow.Context, in task.Input) (task.Output, error) {
	return runTask(ctx, in, nil)
}

func runTask(ctx workflow.Context, in task.Input, check func(string, task.Decision) bool) (task.Output, error) {
	in = scheduledInput(ctx, in)
	r := newRun(ctx, in)
	r.fast = workflow.GetVersion(ctx, versionFast, workflow.DefaultVersion, 1) == 1
	r.lease = workflow.GetVersion(ctx, versionLease, workflow.DefaultVersion, 1) == 1
	r.proof = workflow.GetVersion(ctx, versionProof, workflow.DefaultVersion, 1) == 1
	r.orgRunners = workflow.GetVersion(ctx, versionOrgRunners, workflow.DefaultVersion, 1) == 1
	r.policy.on = workflow.GetVersion(ctx, versionPolicy, workflow.DefaultVersion, 1) == 1
	if r.orgRunners && in.Org != "" {
		// Every activity's payloads under the org's key, the control
		// plane's own activities' too (package codec/control).
		ctx = codec.WorkflowWithOrg(ctx, in.Org)
	}
	r.checkDecision = check
	if err := workflow.SetQueryHandler(ctx, task.QueryState, func() (task.State, error) {
		return r.state, nil
	}); err != nil {
		return task.Output{}, err
	}
	if err := r.handleDecisions(ctx); err != nil {
		return task.Output{}, err
	}
	// Signals are handled to the end, even after a cancel: a force-cancel
	// arrives while the cancelled steps are still stopping.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	r.listen(dctx)
	r.transition(ctx, func(s *task.State) {}, logLine(task.LevelInfo, "task accepted; waiting for runner "+in.RunnerID))

	// runCtx ends on a cancel of the workflow or when the task's timeout
	// fires; either way the running step stops gracefully.
	runCtx, stopRun := workflow.WithCancel(ctx)
	r.stopRun = stopRun
	var out task.Output
	var err error
	if r.orgRunners && in.Plain {
		// Anyone who reaches the namespace could start such a task for any
		// org; a task's input comes from the API, or a parent holding the
		// org's key or the secret key (package codec/control).
		err = taskError(task.CodeConfig, "the task's input is not encrypted: start tasks through the API, or from a workflow whose payloads are encrypted under the org's key (its codec route) or the secret key", nil)
	}
	if err == nil && r.policy.on {
		// Before anything of the task runs, and before it holds its
		// workspace: a denied task starts no engine process.
		err = r.checkPolicy(runCtx, task.PolicyPrePlan, "")
	}
	if err == nil {
		err = r.queueOnWorkspace(runCtx)
	}
	if err == nil {
		out, err = r.execute(runCtx)
	}
	stopRun()
	out, err = r.finish(ctx, out, err)
	r.awaitHandlers(ctx)
	return out, err
}

// queueOnWorkspace waits for the task's turn on a shared workspace: tasks of
// one (org, workspace) run one at a time, in creation order.
func (r *run) queueOnWorkspace(ctx workflow.Context) error {
	if !r.in.SharesWorkspace() {
		return nil
	}
	r.queueID = task.WorkspaceQueueID(r.in.Org, r.in.Params.Workspace)
	r.transition(ctx, func(s *task.State) {
		s.WaitingFor = "workspace " + r.in.Params.Workspace
	}, logLine(task.LevelInfo, "waiting for workspace "+r.in.Params.Workspace+": tasks on it run one at a time, in creation order"))
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: 5 * time.Minute,
	})
	req := task.WorkspaceRequest{TaskID: r.in.ID, CreatedAt: r.in.CreatedAt}
	if err := workflow.ExecuteLocalActivity(lctx, controlplane.NameAcquireWorkspace, r.queueID, req).Get(ctx, nil); err != nil {
		return err
	}
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, task.SignalWorkspaceGranted), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
	})
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
	sel.Select(ctx)
	if ctx.Err() != nil {
		return temporal.NewCanceledError()
	}
	r.transition(ctx, func(s *task.State) {
		s.WaitingFor = "runner " + r.in.RunnerID
	}, logLine(task.LevelInfo, "workspace "+r.in.Params.Workspace+" is this task's; waiting for runner "+r.in.RunnerID))
	return nil
}

// releaseWorkspace hands the workspace to the next task in the queue.
func (r *run) releaseWorkspace(ctx workflow.Context) {
	if r.queueID == "" {
		return
	}
	req := task.WorkspaceRequest{TaskID: r.in.ID, CreatedAt: r.in.CreatedAt}
	if err := workflow.SignalExternalWorkflow(ctx, r.queueID, "", task.SignalWorkspaceRelease, req).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("releasing the workspace", "error", err)
	}
}

// startTimeout arms the task's timeout once it runs: the time spent waiting
// for its workspace or runner does not count.
func (r *run) startTimeout(ctx workflow.Context) {
	timeout := time.Duration(r.in.Params.Timeout)
	if timeout <= 0 || r.timerArmed {
		return
	}
	r.timerArmed = true
	r.armTimeout(ctx, timeout)
}

// armTimeout starts the timer that ends the run after d (see
// pauseTimeout for the approval wait, which does not count).
func (r *run) armTimeout(ctx workflow.Context, d time.Duration) {
	tctx, cancel := workflow.WithCancel(ctx)
	r.timeoutLeft, r.timeoutArmedAt, r.stopTimeout = d, workflow.Now(ctx), cancel
	workflow.Go(tctx, func(g workflow.Context) {
		if err := workflow.NewTimer(g, d).Get(g, nil); err == nil {
			r.timedOut = true
			r.stopRun()
		}
	})
}

// run is the workflow's in-memory state.
type run struct {
	in      task.Input
	steps   []task.Step
	state   task.State
	logSeq  int64
	cancel  *task.CancelRequest
	started bool
	// hostQueue and stepIn name the host and input of the latest block,
	// for the final cleanup.
	hostQueue string
	stepIn    activities.StepInput
	// timedOut is set when the task's timeout ended the run.
	timedOut   bool
	timerArmed bool
	stopRun    workflow.CancelFunc
	// The running timeout timer: what it had left when armed, when, and
	// its cancel (see pauseTimeout).
	timeoutLeft    time.Duration
	timeoutArmedAt time.Time
	stopTimeout    workflow.CancelFunc
	// approval is the review of the task's plan (approval.go).
	approval approvalRun
	// queueID is the workspace queue the task holds or waits in.
	queueID string
	// plan is the latest plan's summary (webui.go).
	plan activities.PlanOutput
	// remediation is the apply task a drifted plan starts (see drift.go).
	remediation *task.Input
	// fast is set in the claim-install version (versionFast); batch
	// collects records inside batchRecords; cleaned is set once the apply
	// removed the work dir itself.
	fast    bool
	batch   *[]controlplane.Record
	cleaned bool
	// orgRunners is set in the org-runners version (versionOrgRunners).
	orgRunners bool
	// proof is set in the decision-proof version (versionProof);
	// checkDecision checks a decision's proof (nil: no check).
	proof         bool
	checkDecision func(string, task.Decision) bool
	// lease is set in the host-lease version (versionLease); lostHosts
	// are the hosts lost in earlier blocks, in the order they were lost.
	lease     bool
	lostHosts []string
	// policy is the task's policy checks (policy.go).
	policy policyRun
}

func newRun(ctx workflow.Context, in task.Input) *run {
	steps := in.Params.EffectiveAction().Steps()
	return &run{
		in:    in,
		steps: steps,
		state: task.State{
			ID:         in.ID,
			Status:     task.StatusPending,
			TotalSteps: len(steps),
			UpdatedAt:  workflow.Now(ctx).UTC(),
			WaitingFor: "runner " + in.RunnerID,
			CreatedBy:  in.CreatedBy,
			Authors:    in.Authors,
		},
	}
}

// listen handles progress and cancel-request signals for the whole run.
func (r *run) listen(ctx workflow.Context) {
	progress := workflow.GetSignalChannel(ctx, task.SignalProgress)
	cancels := workflow.GetSignalChannel(ctx, task.SignalCancel)
	decisions := workflow.GetSignalChannel(ctx, task.SignalDecision)
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			sel := workflow.NewSelector(gctx)
			sel.AddReceive(progress, func(c workflow.ReceiveChannel, _ bool) {
				var p task.Progress
				c.Receive(gctx, &p)
				r.onProgress(gctx, p)
			})
			sel.AddReceive(cancels, func(c workflow.ReceiveChannel, _ bool) {
				var req task.CancelRequest
				c.Receive(gctx, &req)
				r.onCancelRequest(gctx, req)
			})
			sel.AddReceive(decisions, func(c workflow.ReceiveChannel, _ bool) {
				var d task.Decision
				c.Receive(gctx, &d)
				r.onDecisionSignal(gctx, d)
			})
			sel.Select(gctx)
		}
	})
}

// onCancelRequest records who cancels; the cancel itself arrives as the
// workflow's cancellation. A force request also stops the task's processes
// on its host at once.
func (r *run) onCancelRequest(ctx workflow.Context, req task.CancelRequest) {
	if r.state.Status.Terminal() {
		return
	}
	if r.cancel == nil {
		r.cancel = &req
		msg := fmt.Sprintf("cancel requested by %s during step %s; stopping Terraform gracefully", req.By, stepOrPending(r.state.CurrentStep))
		if r.approval.waiting {
			msg = fmt.Sprintf("cancel requested by %s while the plan waits for approval; no Terraform runs", req.By)
		}
		r.transition(ctx, func(s *task.State) {
			s.Status = task.StatusCancelling
			s.CancelledBy = req.By
			at := req.At.UTC()
			s.CancelledAt = &at
		}, logLine(task.LevelWarn, msg))
	}
	if req.Force && r.hostQueue != "" {
		fctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:              r.hostQueue,
			ScheduleToStartTimeout: 30 * time.Second,
			StartToCloseTimeout:    time.Minute,
			RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 3},
		})
		var killed int
		err := workflow.ExecuteActivity(fctx, activities.NameForceStop, r.stepIn).Get(ctx, &killed)
		msg := fmt.Sprintf("force cancel by %s: stopped %d process(es) of the task", req.By, killed)
		level := task.LevelWarn
		if err != nil {
			msg = fmt.Sprintf("force cancel by %s could not reach host %s: %v", req.By, r.state.Host, err)
			level = task.LevelError
		}
		r.transition(ctx, func(s *task.State) {}, logLine(level, msg))
	}
}

func (r *run) onProgress(ctx workflow.Context, p task.Progress) {
	if r.state.Status.Terminal() || p.Step != r.state.CurrentStep {
		return
	}
	if p.PlannedChanges > r.state.PlannedChanges {
		r.state.PlannedChanges = p.PlannedChanges
	}
	if p.ChangesDone > r.state.ChangesDone {
		r.state.ChangesDone = p.ChangesDone
	}
	r.setProgress(ctx)
}

func (r *run) setProgress(ctx workflow.Context) {
	var p int
	if r.state.Status == task.StatusCompleted {
		p = 100
	} else {
		done := 0
		if r.state.CurrentStep == task.StepApplying || r.state.CurrentStep == task.StepDestroying {
			done = r.state.ChangesDone
		}
		p = task.ComputeProgress(r.steps, r.state.StepsCompleted, r.state.PlannedChanges, done)
	}
	if p > r.state.Progress {
		r.state.Progress = p
	}
	r.state.UpdatedAt = workflow.Now(ctx).UTC()
	workflow.SetCurrentDetails(ctx, r.details())
}

// execute runs the runner block, restarting it on another host when the
// pinned host is lost.
func (r *run) execute(ctx workflow.Context) (task.Output, error) {
	var lastErr error
	for runNo := 1; runNo <= maxRuns; runNo++ {
		out, err := r.runBlock(ctx, runNo)
		if err == nil || !hostLost(err) {
			return out, err
		}
		lastErr = err
		if r.lease && r.state.Host != "" && !slices.Contains(r.lostHosts, r.state.Host) {
			r.lostHosts = append(r.lostHosts, r.state.Host)
		}
		r.transition(ctx, func(s *task.State) {
			s.StepsCompleted = 0
			s.ChangesDone = 0
		}, logLine(task.LevelWarn, fmt.Sprintf("runner host %s was lost; restarting on another host of runner %s", r.state.Host, r.in.RunnerID)))
	}
	return task.Output{}, taskError(task.CodeRunnerUnavailable,
		fmt.Sprintf("runner %s lost the task %d times", r.in.RunnerID, maxRuns), lastErr)
}

// runnerQueue is the queue of the task's runner, where its claim goes.
func (r *run) runnerQueue() string {
	if r.orgRunners {
		return task.RunnerTaskQueue(r.in.Org, r.in.RunnerID)
	}
	return task.LegacyRunnerTaskQueue(r.in.RunnerID)
}

// runBlock claims a host and runs every step on it.
func (r *run) runBlock(ctx workflow.Context, runNo int) (task.Output, error) {
	in := activities.StepInput{Task: r.in, Run: runNo, SavedPlan: r.approval.saved, Install: r.fast,
		PolicyPlan: r.policy.readsPlan, PolicyApproval: r.policy.approval}
	if r.lease && len(r.lostHosts) > 0 {
		in.AvoidHosts = slices.Clone(r.lostHosts)
	}
	r.state.Attempt = runNo

	wait := time.Duration(r.in.Params.RunnerTimeout)
	if wait <= 0 {
		wait = time.Duration(r.in.RunnerWait)
	}
	if wait <= 0 {
		wait = defaultRunnerWait
	}
	claimOpts := workflow.ActivityOptions{
		TaskQueue:              r.runnerQueue(),
		ScheduleToStartTimeout: wait,
		StartToCloseTimeout:    time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 5},
	}
	if r.lease {
		// The claim heartbeats like every step: a claim a frozen host
		// took is retried after the heartbeat timeout.
		retry := claimRetry
		claimOpts.HeartbeatTimeout = claimHeartbeatTimeout
		claimOpts.RetryPolicy = &retry
	}
	claimCtx := workflow.WithActivityOptions(ctx, claimOpts)
	summary := "claim a host of runner " + r.in.RunnerID
	if r.fast {
		summary += " and " + r.stepSummary(task.StepInstalling)
	}
	var claim activities.ClaimOutput
	if err := workflow.ExecuteActivity(withSummary(claimCtx, summary), activities.NameClaim, in).Get(ctx, &claim); err != nil {
		var te *temporal.TimeoutError
		if errors.As(err, &te) {
			if r.lease && te.TimeoutType() == enumspb.TIMEOUT_TYPE_HEARTBEAT {
				// The last attempt was taken by a host that then went
				// silent.
				return task.Output{}, taskError(task.CodeRunnerUnavailable,
					fmt.Sprintf("the claim's last attempt (of %d) was taken by a host of runner %q that then went silent", claimRetry.MaximumAttempts, r.in.RunnerID), nil)
			}
			return task.Output{}, taskError(task.CodeRunnerUnavailable,
				fmt.Sprintf("no runner %q picked the task up within %s", r.in.RunnerID, wait), nil)
		}
		return task.Output{}, err
	}
	in.Install = false
	pickedUp := func() {
		r.transition(ctx, func(s *task.State) {
			s.Status = task.StatusRunning
			s.Host = claim.Host
			s.WaitingFor = ""
			if s.StartedAt == nil {
				now := workflow.Now(ctx).UTC()
				s.StartedAt = &now
			}
		}, logLine(task.LevelInfo, fmt.Sprintf("picked up by runner %s on host %s", r.in.RunnerID, claim.Host)))
	}
	// recorded is how many steps the claim's batch has recorded as started.
	recorded := 0
	if r.fast && claim.TerraformPath != "" {
		// The claim ran the installing step: record it, and the start of
		// the next, with the pickup.
		in.TerraformPath = claim.TerraformPath
		r.batchRecords(ctx, func() {
			pickedUp()
			for i := 0; i < 2 && i < len(r.steps); i++ {
				r.stepStarted(ctx, i)
				recorded++
			}
		})
	} else {
		pickedUp()
	}
	r.startTimeout(ctx)

	// The task's timeout is enforced by a timer that stops the run
	// gracefully; a step's own bound only catches a host that hangs.
	timeout := time.Duration(r.in.Params.Timeout) + stopGrace
	if r.in.Params.Timeout <= 0 {
		timeout = defaultTimeout
	}
	stepNonRetryable := nonRetryable
	if r.lease {
		// A heartbeat timeout ends the block (hostLost): a retry would
		// go to this host's queue again.
		stepNonRetryable = hostNonRetryable
	}
	hostCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              claim.HostQueue,
		ScheduleToStartTimeout: hostScheduleToStart,
		StartToCloseTimeout:    timeout,
		HeartbeatTimeout:       stepHeartbeatTimeout,
		WaitForCancellation:    true,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: stepNonRetryable,
		},
	})

	r.hostQueue = claim.HostQueue
	r.stepIn = in
	var out task.Output
	for i, step := range r.steps {
		if step == task.StepPlanning && r.approval.saved != nil {
			// A block restarted after the approval applies the approved
			// plan; it never plans again.
			continue
		}
		if i >= recorded {
			r.stepStarted(ctx, i)
		}
		hostCtx := withSummary(hostCtx, r.stepSummary(step))
		switch step {
		case task.StepInstalling:
			if in.TerraformPath != "" && r.fast {
				continue // the claim installed
			}
			var inst activities.InstallOutput
			if err := workflow.ExecuteActivity(hostCtx, activities.NameInstall, in).Get(ctx, &inst); err != nil {
				return out, err
			}
			in.TerraformPath = inst.TerraformPath
			r.stepIn = in
		case task.StepInitializing:
			if err := workflow.ExecuteActivity(hostCtx, activities.NameInit, in).Get(ctx, nil); err != nil {
				return out, err
			}
		case task.StepPlanning:
			var plan activities.PlanOutput
			if err := workflow.ExecuteActivity(hostCtx, activities.NamePlan, in).Get(ctx, &plan); err != nil {
				return out, err
			}
			r.state.PlannedChanges = plan.PlannedChanges
			r.plan = plan
			if plan.Digest != "" {
				r.state.Plan = &plan.Summary
			}
			if err := r.postPlanPolicy(ctx, plan.Digest); err != nil {
				return out, err
			}
			if err := r.afterPlan(ctx, plan, &in); err != nil {
				return out, err
			}
			out.Result.Drift = r.driftOutcome(ctx, plan.Drift)
		case task.StepApplying, task.StepDestroying:
			var applied activities.ApplyOutput
			in.CleanUp = r.fast
			if err := workflow.ExecuteActivity(hostCtx, activities.NameApply, in).Get(ctx, &applied); err != nil {
				return out, err
			}
			in.CleanUp = false
			r.cleaned = applied.CleanedUp
			r.state.ChangesDone = applied.ChangesDone
			out.Result.Output = applied.Outputs
		}
	}
	if out.Result.Output == nil {
		out.Result.Output = map[string]any{}
	}
	return out, nil
}

// stepStarted records that the i-th step started.
func (r *run) stepStarted(ctx workflow.Context, i int) {
	step := r.steps[i]
	r.transition(ctx, func(s *task.State) {
		s.CurrentStep = step
		s.StepsCompleted = i
	}, logLine(task.LevelInfo, "step "+string(step)+" started"))
}

// cleanup removes the task's work dir on its host, whatever the outcome: the
// dir holds the configuration and, until apply, a plan with variable values.
// It is best effort: a host that is gone has nothing left to clean.
func (r *run) cleanup(ctx workflow.Context) {
	if r.hostQueue == "" || r.cleaned {
		return
	}
	cctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              r.hostQueue,
		ScheduleToStartTimeout: 30 * time.Second,
		StartToCloseTimeout:    time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 2},
	})
	if err := workflow.ExecuteActivity(cctx, activities.NameCleanup, r.stepIn).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("cleaning the task's work dir", "error", err)
	}
}

// hostLost reports whether an error means the pinned host went away, so the
// block should restart elsewhere.
func hostLost(err error) bool {
	var te *temporal.TimeoutError
	if !errors.As(err, &te) {
		return false
	}
	switch te.TimeoutType() {
	case enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, enumspb.TIMEOUT_TYPE_HEARTBEAT:
		return true
	}
	return false
}

// finish records the terminal state and returns the workflow's result.
func (r *run) finish(ctx workflow.Context, out task.Output, err error) (task.Output, error) {
	// After a cancel, ctx is done: terminal bookkeeping runs disconnected.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if r.lease {
		// In the lease version the block has ended only once its
		// attempt's processes are gone or its lease is over (the
		// watchdog), so the workspace goes on first; the cleanup on a
		// host that may be lost is best effort and must not hold it up.
		defer r.cleanup(dctx)
		defer r.releaseWorkspace(dctx)
	} else {
		defer r.releaseWorkspace(dctx)
		defer r.cleanup(dctx)
	}
	now := workflow.Now(dctx).UTC()
	switch {
	case err == nil:
		out.Status = task.StatusCompleted
		r.transition(dctx, func(s *task.State) {
			s.Status = task.StatusCompleted
			s.StepsCompleted = len(r.steps)
			s.CurrentStep = ""
			s.CompletedAt = &now
			s.Result = &out.Result
		}, logLine(task.LevelInfo, "task completed"))
		return out, nil
	case r.timedOut:
		te := task.Error{Code: task.CodeTimeout,
			Message: fmt.Sprintf("the task did not finish within its timeout of %s", time.Duration(r.in.Params.Timeout)),
			Details: map[string]any{"step": string(r.state.CurrentStep), "timeout": time.Duration(r.in.Params.Timeout).String()}}
		r.transition(dctx, func(s *task.State) {
			s.Status = task.StatusFailed
			s.CompletedAt = &now
			s.Result = &task.Result{Output: map[string]any{}, Error: &te}
		}, logLine(task.LevelError, fmt.Sprintf("task timed out after %s during step %s", time.Duration(r.in.Params.Timeout), stepOrPending(r.state.CurrentStep))))
		return task.Output{Status: task.StatusFailed, Result: *r.state.Result},
			temporal.NewNonRetryableApplicationError(te.Message, te.Code, nil, te)
	case temporal.IsCanceledError(err) || ctx.Err() != nil:
		// A cancel request signal may land in the same workflow task as the
		// cancellation, before the listener has read it: take it here so the
		// task names who cancelled it.
		if r.cancel == nil {
			var req task.CancelRequest
			if workflow.GetSignalChannel(ctx, task.SignalCancel).ReceiveAsync(&req) {
				r.cancel = &req
			}
		}
		by, at := "temporal", now
		if r.cancel != nil {
			if r.cancel.By != "" {
				by = r.cancel.By
			}
			if !r.cancel.At.IsZero() {
				at = r.cancel.At.UTC()
			}
		}
		r.transition(dctx, func(s *task.State) {
			s.Status = task.StatusCancelled
			s.CompletedAt = &now
			s.CancelledAt = &at
			s.CancelledBy = by
			s.Result = &task.Result{Output: map[string]any{}, Error: &task.Error{
				Code: task.CodeCancelled, Message: "task cancelled by " + by,
				Details: map[string]any{"step": string(r.state.CurrentStep)},
			}}
		}, logLine(task.LevelWarn, fmt.Sprintf("task cancelled by %s during step %s", by, stepOrPending(r.state.CurrentStep))))
		return task.Output{Status: task.StatusCancelled, Result: *r.state.Result}, temporal.NewCanceledError(by)
	default:
		te := toTaskError(err)
		status, level, msg := task.StatusFailed, task.LevelError, "task failed: "+te.Message
		if te.Code == task.CodeRejected || te.Code == task.CodeApprovalTimeout {
			status, level, msg = task.StatusRejected, task.LevelWarn, "task rejected: "+te.Message
		}
		r.transition(dctx, func(s *task.State) {
			s.Status = status
			s.CompletedAt = &now
			s.Result = &task.Result{Output: map[string]any{}, Error: &te}
		}, logLine(level, msg))
		return task.Output{Status: status, Result: *r.state.Result},
			temporal.NewNonRetryableApplicationError(te.Message, te.Code, nil, te)
	}
}

func stepOrPending(s task.Step) string {
	if s == "" {
		return "pending"
	}
	return string(s)
}

// taskError builds an application error carrying a task.Error.
func taskError(code, msg string, cause error) error {
	return temporal.NewNonRetryableApplicationError(msg, code, cause, task.Error{Code: code, Message: msg})
}

// toTaskError extracts the task.Error an activity failed with, or wraps an
// unexpected failure as an internal error.
func toTaskError(err error) task.Error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		var te task.Error
		if appErr.HasDetails() && appErr.Details(&te) == nil && te.Code != "" {
			return te
		}
		code := appErr.Type()
		if code == "" {
			code = task.CodeInternal
		}
		return task.Error{Code: code, Message: appErr.Message()}
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		return task.Error{Code: task.CodeTimeout, Message: "a step did not finish in time: " + timeoutErr.Error()}
	}
	return task.Error{Code: task.CodeInternal, Message: err.Error()}
}
