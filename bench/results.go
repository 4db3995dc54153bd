package bench

import "time"

// Results is one run of the benchmark; results.json holds the latest.
type Results struct {
	Date     time.Time `json:"date"`
	Quick    bool      `json:"quick"`
	Machine  Machine   `json:"machine"`
	Settings Settings  `json:"settings"`
	// Seconds is how long the run took, build included.
	Seconds float64 `json:"seconds"`
	// Rows are the table's rows, for machines.
	Rows       []Row             `json:"rows"`
	Overhead   []OverheadResult  `json:"overhead,omitempty"`
	Throughput *ThroughputResult `json:"throughput,omitempty"`
	API        *APIResult        `json:"api,omitempty"`
	Memory     *MemoryResult     `json:"memory,omitempty"`
	Breakdowns []BreakdownResult `json:"breakdowns,omitempty"`
	Profile    *ProfileResult    `json:"profile,omitempty"`
	Sandbox    *SandboxResult    `json:"sandbox,omitempty"`
	PolicyEval *PolicyEvalResult `json:"policy_eval,omitempty"`
	PolicyTask *PolicyTaskResult `json:"policy_task,omitempty"`
	// Load is how busy the rest of the machine was, per phase.
	Load []PhaseLoad `json:"load"`
	// Notes are things the reader of the table should know (failed
	// phases, odd conditions).
	Notes []string `json:"notes,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	Go        string `json:"go"`
	Terraform string `json:"terraform"`
	Commit    string `json:"commit,omitempty"`
}

// Settings are the sizes the run used.
type Settings struct {
	OverheadRuns   int     `json:"overhead_runs"`
	SlowRuns       int     `json:"slow_runs"`
	Resources      []int   `json:"resources"`
	Slow           string  `json:"slow"`
	Tasks          int     `json:"throughput_tasks"`
	Clients        int     `json:"throughput_clients"`
	ThroughputRuns int     `json:"throughput_runs"`
	SeedTasks      int     `json:"seed_tasks"`
	SeedLogs       int     `json:"seed_logs"`
	LatencySamples int     `json:"latency_samples"`
	CreateSamples  int     `json:"create_samples"`
	RPSClients     int     `json:"rps_clients"`
	RPSSeconds     float64 `json:"rps_seconds"`
	BreakdownRuns  int     `json:"breakdown_runs"`
	ProfileTasks   int     `json:"profile_tasks"`
	PolicyEvals    int     `json:"policy_evals,omitempty"`
	PolicyRuns     int     `json:"policy_runs,omitempty"`
	PollMillis     float64 `json:"poll_ms"`
}

// Row is one line of the table. Value and Base are in Unit; Ratio is
// Value/Base (0 when there is no baseline). Met is nil when the row has no
// target.
type Row struct {
	ID        string  `json:"id"`
	Measure   string  `json:"measure"`
	Terratask string  `json:"terratask"`
	Baseline  string  `json:"baseline"`
	Ratio     string  `json:"ratio"`
	Target    string  `json:"target"`
	Met       *bool   `json:"met"`
	Value     float64 `json:"value"`
	Base      float64 `json:"base"`
	Unit      string  `json:"unit"`
}

// OverheadResult is item 1 for one fixture: sequential tasks, POST to
// completed, against the bare script.
type OverheadResult struct {
	Fixture   string `json:"fixture"`
	Resources int    `json:"resources,omitempty"`
	// Provider is set for the provider fixture (a warm runner).
	Provider bool    `json:"provider,omitempty"`
	Task     Dist    `json:"task"`
	Bare     Dist    `json:"bare"`
	AddedMS  float64 `json:"added_p50_ms"`
	Ratio    float64 `json:"ratio_p50"`
	// Bare per-command medians, ms.
	BareSteps map[string]float64 `json:"bare_steps_p50_ms"`
	// CPU per task: terratask dev's own (Temporal, workers, API, store,
	// and the 10 ms polling) and its terraform children's; and the bare
	// script's.
	DevCPUMS       float64 `json:"dev_cpu_per_task_ms"`
	TerraformCPUMS float64 `json:"terraform_cpu_per_task_ms"`
	BareCPUMS      float64 `json:"bare_cpu_per_run_ms"`
}

// ThroughputResult is item 2.
type ThroughputResult struct {
	Tasks   int `json:"tasks"`
	Clients int `json:"clients"`
	// Per run, seconds.
	TaskWall []float64 `json:"task_wall_s"`
	BareWall []float64 `json:"bare_wall_s"`
	// CreateWall is how long the 200 POSTs took (all accepted), per run.
	CreateWall []float64 `json:"create_wall_s"`
	TaskP50    float64   `json:"task_wall_p50_s"`
	BareP50    float64   `json:"bare_wall_p50_s"`
	Ratio      float64   `json:"ratio_p50"`
	// CPU per task, ms (medians over runs).
	DevCPUMS       float64 `json:"dev_cpu_per_task_ms"`
	TerraformCPUMS float64 `json:"terraform_cpu_per_task_ms"`
	BareCPUMS      float64 `json:"bare_cpu_per_run_ms"`
	// PeakTerraform is the most terraform processes dev ran at once.
	PeakTerraform int `json:"peak_terraform_processes"`
	// Phases are medians and maxima of a sample of the last run's tasks'
	// phases, from their logs, ms.
	Phases []Phase `json:"phases,omitempty"`
	// InitWaits is how many of the sampled tasks logged a wait for the
	// runner's init lock.
	InitWaits int `json:"init_waits"`
	Sampled   int `json:"sampled_tasks"`
}

// Phase is one phase of a task as its logs show it.
type Phase struct {
	Name  string  `json:"name"`
	P50MS float64 `json:"p50_ms"`
	MaxMS float64 `json:"max_ms"`
}

// APIResult is item 3.
type APIResult struct {
	Seeded      int     `json:"seeded_tasks"`
	SeededLogs  int     `json:"seeded_logs"`
	SeedSeconds float64 `json:"seed_s"`
	Create      Dist    `json:"create"`
	StartWF     Dist    `json:"start_workflow"`
	// StartTaskWF is StartWorkflow with terratask's own input, options and
	// search attributes (a diagnostic).
	StartTaskWF  Dist           `json:"start_workflow_task_input"`
	Floor        Dist           `json:"floor"`
	Reads        []ReadLatency  `json:"reads"`
	RPS          float64        `json:"get_rps"`
	FloorRPS     float64        `json:"floor_rps"`
	RPSErrors    int            `json:"get_rps_errors"`
	ResponseSize map[string]int `json:"response_bytes,omitempty"`
}

// ReadLatency is the latency of one read route.
type ReadLatency struct {
	Name     string  `json:"name"`
	Path     string  `json:"path"`
	Dist     Dist    `json:"dist"`
	TargetMS float64 `json:"target_p99_ms"`
	Bytes    int     `json:"bytes"`
}

// MemoryResult is item 4, MiB.
type MemoryResult struct {
	IdleMiB float64 `json:"idle_rss_mib"`
	PeakMiB float64 `json:"peak_rss_mib"`
	// HWMMiB is the kernel's high-water mark at the end of the throughput
	// phase (since dev started).
	HWMMiB float64 `json:"hwm_mib"`
}

// BreakdownResult is where a task's time goes: the timeline of a task of one
// fixture on a dev whose terraform is a recording wrapper, medians over runs.
type BreakdownResult struct {
	Fixture string `json:"fixture"`
	// Policies is set for a task traced with the policy rows' policies in
	// its org; Baseline then names the fixture of the same task without.
	Policies int       `json:"policies,omitempty"`
	Baseline string    `json:"baseline,omitempty"`
	Runs     int       `json:"runs"`
	Segments []Segment `json:"segments"`
	// TotalMS is POST to completed seen; TerraformMS the time inside
	// terraform commands; OrchestrationMS the rest.
	TotalMS         float64 `json:"total_ms"`
	TerraformMS     float64 `json:"terraform_ms"`
	OrchestrationMS float64 `json:"orchestration_ms"`
	// Commands counts the terraform commands a task ran, by subcommand,
	// with their median durations.
	Commands []CommandStat `json:"commands"`
	// BareSteps are the bare script's per-command medians, ms.
	BareSteps map[string]float64 `json:"bare_steps_p50_ms"`
	BareMS    float64            `json:"bare_ms"`
	// The cost of polling: the same task polled every PollMS and every
	// SlowPollMS; dev's own CPU per task, status requests per task, and
	// the workflow's accepted-to-completed time (the server's view, which
	// polling does not delay).
	PollMS           float64 `json:"poll_ms"`
	SlowPollMS       float64 `json:"slow_poll_ms"`
	DevCPUMS         float64 `json:"dev_cpu_per_task_ms"`
	DevCPUSlowPollMS float64 `json:"dev_cpu_per_task_slow_poll_ms"`
	Polls            float64 `json:"polls_per_task"`
	PollsSlow        float64 `json:"polls_per_task_slow_poll"`
	ServerMS         float64 `json:"accepted_to_completed_ms"`
	ServerSlowPollMS float64 `json:"accepted_to_completed_slow_poll_ms"`
	// History counts the last traced task's workflow history events by
	// type; HistoryEvents is their total.
	History       map[string]int `json:"history_events_by_type,omitempty"`
	HistoryEvents int            `json:"history_events"`
	// Temporal is where a traced task's time went in Temporal, from its
	// history's event times (temporalLatencies): medians in ms per task.
	Temporal map[string]float64 `json:"temporal_ms,omitempty"`
	// CPUPerPollMS is dev's CPU per status request of a running task.
	CPUPerPollMS float64 `json:"dev_cpu_per_status_request_ms"`
}

// Segment is the time between two consecutive events of a task.
type Segment struct {
	From  string  `json:"from"`
	To    string  `json:"to"`
	P50MS float64 `json:"p50_ms"`
	// Kind is "terraform" for a terraform command, else "orchestration".
	Kind string `json:"kind"`
}

// CommandStat is one terraform subcommand of a task.
type CommandStat struct {
	Name  string  `json:"name"`
	Count float64 `json:"count_per_task"`
	P50MS float64 `json:"p50_ms"`
}

// PhaseLoad is the CPU that processes outside the benchmark used during a
// phase, in percent of the whole machine: a noise gauge.
type PhaseLoad struct {
	Phase       string  `json:"phase"`
	Seconds     float64 `json:"seconds"`
	OtherCPUPct float64 `json:"other_cpu_pct"`
}
