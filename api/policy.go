package api

import (
	"encoding/json"

	"github.com/terratask/terratask/task"
)

// Policy is one version of one of an org's policies (GET, PUT
// /api/v1/policies/{name}). Lists leave Rego out.
type Policy struct {
	Name        string `json:"name"`
	Version     int    `json:"version"`
	SHA256      string `json:"sha256"`
	Description string `json:"description"`
	// Source is "api", or "dir:PATH" for a policy loaded from
	// --policy-dir (the API may not change or delete those).
	Source    string `json:"source"`
	CreatedBy string `json:"created_by"`
	CreatedAt string `json:"created_at"`
	// Deleted marks the version that deleted the policy (versions list).
	Deleted bool   `json:"deleted,omitempty"`
	Rego    string `json:"rego,omitempty"`
}

// PolicyList is GET /api/v1/policies: the org's current policies by name.
type PolicyList struct {
	Policies []Policy `json:"policies"`
}

// PolicyVersions is GET /api/v1/policies/{name}/versions, newest first.
type PolicyVersions struct {
	Versions []Policy `json:"versions"`
}

// PutPolicyRequest is the body of PUT /api/v1/policies/{name}.
type PutPolicyRequest struct {
	Rego        string `json:"rego"`
	Description string `json:"description"`
}

// EvaluatePolicyRequest is the body of POST /api/v1/policies/evaluate: a
// dry run that creates no task.
type EvaluatePolicyRequest struct {
	// Stage is "pre_plan" or "post_plan".
	Stage string `json:"stage"`
	// Task is a task as POST /api/v1/tasks takes it.
	Task json.RawMessage `json:"task"`
	// Plan is Terraform's JSON plan (`terraform show -json`), for
	// post_plan.
	Plan json.RawMessage `json:"plan,omitempty"`
	// Policies, by name, are evaluated in place of the org's policies of
	// the same names (and beside the others): a draft tried before it is
	// pushed.
	Policies map[string]string `json:"policies,omitempty"`
}

// EvaluatePolicyResponse is the dry run's decision: allow, deny,
// require_approval, or error (Error says why).
type EvaluatePolicyResponse struct {
	Decision string              `json:"decision"`
	Stage    string              `json:"stage"`
	Results  []task.PolicyResult `json:"results"`
	Policies []task.PolicyRef    `json:"policies"`
	Error    string              `json:"error,omitempty"`
}

// PolicyProblem is one compile error of a policy: the details of a 400
// list them under "problems".
type PolicyProblem struct {
	Policy  string `json:"policy"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}
