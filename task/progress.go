package task

// Progress is what a runner reports while a step runs.
type Progress struct {
	Step           Step `json:"step"`
	PlannedChanges int  `json:"planned_changes"`
	ChangesDone    int  `json:"changes_done"`
}

// stepWeight is a step's share of the progress bar: applying dominates, since
// it is where resources change and progress moves resource by resource.
func stepWeight(s Step) int {
	switch s {
	case StepInstalling:
		return 1
	case StepInitializing:
		return 2
	case StepPlanning:
		return 3
	default:
		return 14
	}
}

// ComputeProgress maps a position in a task's steps to 0..99: stepsCompleted
// whole steps plus the fraction done/planned of the current step. 100 is kept
// for a completed task, which the caller sets.
func ComputeProgress(steps []Step, stepsCompleted, planned, done int) int {
	total, before := 0, 0
	for i, s := range steps {
		total += stepWeight(s)
		if i < stepsCompleted {
			before += stepWeight(s)
		}
	}
	if total == 0 {
		return 0
	}
	num := before * 99 * 100 // in hundredths of a weight unit
	if stepsCompleted < len(steps) && planned > 0 {
		if done > planned {
			done = planned
		}
		num += stepWeight(steps[stepsCompleted]) * 99 * 100 * done / planned
	}
	p := num / (total * 100)
	if p > 99 {
		p = 99
	}
	return p
}
