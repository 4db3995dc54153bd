package task

// Policy as code: the org's Rego policies are evaluated by the control plane
// at two stages of a task (package policy), and their outcome is kept on
// the task.

// Policy stages.
const (
	// PolicyPrePlan runs before any task code: the input is the task
	// ({"terratask": {...}}).
	PolicyPrePlan = "pre_plan"
	// PolicyPostPlan runs after the plan: the input is Terraform's JSON
	// plan, sensitive values masked, plus the "terratask" key.
	PolicyPostPlan = "post_plan"
)

// Policy decisions, in increasing order of weight.
const (
	PolicyAllow           = "allow"
	PolicyRequireApproval = "require_approval"
	PolicyDeny            = "deny"
	// PolicyError is the decision of a check that could not be evaluated
	// (the task fails closed, code CodePolicyError).
	PolicyError = "error"
)

// Policy rules read from every module.
const (
	RuleDeny            = "deny"
	RuleRequireApproval = "require_approval"
	RuleWarn            = "warn"
)

// PolicyCheck is the outcome of one stage's evaluation of the org's
// policies for a task.
type PolicyCheck struct {
	// Decision is PolicyAllow, PolicyRequireApproval, PolicyDeny or
	// PolicyError.
	Decision string `json:"decision"`
	Stage    string `json:"stage"`
	// Results lists every message of a deny, require_approval or warn
	// rule, in policy then rule then message order.
	Results []PolicyResult `json:"results"`
	// Policies are the policy versions evaluated: a task's post_plan check
	// evaluates the versions its pre_plan check did.
	Policies []PolicyRef `json:"policies,omitempty"`
	// Error says why the check could not be evaluated (PolicyError).
	Error string `json:"error,omitempty"`
}

// PolicyResult is one message of one rule of one policy.
type PolicyResult struct {
	Policy  string `json:"policy"`
	Version int    `json:"version"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// PolicyRef names one version of one policy.
type PolicyRef struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	SHA256  string `json:"sha256"`
}

// Messages returns the messages of rule, in order.
func (c *PolicyCheck) Messages(rule string) []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, r := range c.Results {
		if r.Rule == rule {
			out = append(out, r.Message)
		}
	}
	return out
}

// PolicyInputContext binds a task's sealed plan JSON (the post_plan
// check's input, sealed by the runner with the org's key) to its task and
// plan: it opens only as that plan's.
func PolicyInputContext(org, taskID, digest string) []byte {
	return []byte("terratask policy input\x00" + org + "\x00" + taskID + "\x00" + digest)
}
