package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"time"
)

// CredentialSet is one of an org's credential sets (issue 22): values an
// admin keeps server-side for the tasks that name the set (or that it
// attaches itself to), and who may use them. The store never sees a value:
// they arrive sealed under the org's key (secret.Box.Seal), which the
// org's runners open at step start.
type CredentialSet struct {
	Org         string
	Name        string
	Description string
	// SealedEnv is the set's env, a task.Secrets holding Env only, and
	// SealedVariables its sensitive_variables, one holding
	// SensitiveVariables only, each sealed under the org's key ("" for
	// none): two blobs, so a put may keep one and replace the other.
	SealedEnv       string
	SealedVariables string
	// EnvNames and VariableNames name what they hold (sorted; never nil
	// when read), so the API shows names without opening anything.
	EnvNames      []string
	VariableNames []string
	// Agents, Workspaces and Runners are glob lists (path.Match) of the
	// task agents, workspaces and runner IDs the set serves; an empty list
	// matches any (never nil when read).
	Agents     []string
	Workspaces []string
	Runners    []string
	// Attach makes the set apply to every task whose workspace matches
	// Workspaces (then not empty), and whose agent and runner its other
	// scopes allow, without the task naming it.
	Attach bool
	// OIDC configures workload identity for the set's steps (nil: none).
	OIDC *CredentialOIDC
	// CreatedBy and UpdatedBy are the keys that wrote the set first and
	// last; CreatedAt and UpdatedAt are assigned by the store.
	CreatedBy string
	CreatedAt time.Time
	UpdatedBy string
	UpdatedAt time.Time
}

// CredentialOIDC is a set's workload identity: the provider whose
// credentials a step's OIDC token is exchanged for, the token's audience,
// and the provider's fields (aws_role_arn; gcp_workload_provider and
// gcp_service_account; azure_client_id and azure_tenant_id; none for
// generic).
type CredentialOIDC struct {
	Provider            string `json:"provider"`
	Audience            string `json:"audience,omitempty"`
	AWSRoleARN          string `json:"aws_role_arn,omitempty"`
	GCPWorkloadProvider string `json:"gcp_workload_provider,omitempty"`
	GCPServiceAccount   string `json:"gcp_service_account,omitempty"`
	AzureClientID       string `json:"azure_client_id,omitempty"`
	AzureTenantID       string `json:"azure_tenant_id,omitempty"`
}

// CredentialKeep says which values of the stored set a put leaves as they
// are (the API's PUT without env or sensitive_variables).
type CredentialKeep struct {
	Env       bool
	Variables bool
}

// CredentialSetStore keeps the orgs' credential sets.
type CredentialSetStore interface {
	// PutCredentialSet creates or replaces (set.Org, set.Name) and returns
	// it as stored, with created true for a new set. The values keep
	// names are the stored set's (none for a new set): ApplyCredentialPut
	// applied, in one transaction, to the set as stored. Org and Name are
	// required.
	PutCredentialSet(ctx context.Context, set CredentialSet, keep CredentialKeep) (CredentialSet, bool, error)
	// GetCredentialSet returns (org, name), or ErrNotFound.
	GetCredentialSet(ctx context.Context, org, name string) (CredentialSet, error)
	// ListCredentialSets returns org's sets by name (bytewise), sealed
	// values included.
	ListCredentialSets(ctx context.Context, org string) ([]CredentialSet, error)
	// DeleteCredentialSet deletes (org, name); ErrNotFound when there is
	// none.
	DeleteCredentialSet(ctx context.Context, org, name string) error
}

// ApplyCredentialPut is PutCredentialSet's rule, which every store applies
// to the stored set it read under a lock that orders it with every other
// write of that set (has false: none). It returns what to store: next,
// with the values keep names taken from cur (empty for a new set), and
// CreatedBy and CreatedAt cur's when there is one. The store assigns
// CreatedAt of a new set and UpdatedAt.
func ApplyCredentialPut(cur CredentialSet, has bool, next CredentialSet, keep CredentialKeep) CredentialSet {
	out := next
	if keep.Env {
		out.SealedEnv, out.EnvNames = "", nil
		if has {
			out.SealedEnv, out.EnvNames = cur.SealedEnv, cur.EnvNames
		}
	}
	if keep.Variables {
		out.SealedVariables, out.VariableNames = "", nil
		if has {
			out.SealedVariables, out.VariableNames = cur.SealedVariables, cur.VariableNames
		}
	}
	out.CreatedAt, out.UpdatedAt = time.Time{}, time.Time{}
	if has {
		out.CreatedBy, out.CreatedAt = cur.CreatedBy, cur.CreatedAt
	}
	out.EnvNames, out.VariableNames = sortedNames(out.EnvNames), sortedNames(out.VariableNames)
	out.Agents, out.Workspaces, out.Runners = nonNil(out.Agents), nonNil(out.Workspaces), nonNil(out.Runners)
	return out
}

// sortedNames is a sorted copy of names, never nil.
func sortedNames(names []string) []string {
	out := slices.Clone(nonNil(names))
	slices.Sort(out)
	return out
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// Scopes of a credential set, as a refusal names them.
const (
	ScopeAgents     = "agents"
	ScopeWorkspaces = "workspaces"
	ScopeRunners    = "runners"
)

// MatchGlobs reports whether name matches one of globs (path.Match); an
// empty list matches any name, and a malformed pattern none.
func MatchGlobs(globs []string, name string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		if ok, err := path.Match(g, name); ok && err == nil {
			return true
		}
	}
	return false
}

// Refusal returns the first scope of s (agents, workspaces, runners) that
// does not serve a task of agent on workspace run by runner, or "" when s
// serves it.
func (s CredentialSet) Refusal(agent, workspace, runner string) string {
	switch {
	case !MatchGlobs(s.Agents, agent):
		return ScopeAgents
	case !MatchGlobs(s.Workspaces, workspace):
		return ScopeWorkspaces
	case !MatchGlobs(s.Runners, runner):
		return ScopeRunners
	}
	return ""
}

// Attaches reports whether s attaches itself to a task of agent on
// workspace run by runner: it is attached, names workspaces, and serves
// the task.
func (s CredentialSet) Attaches(agent, workspace, runner string) bool {
	return s.Attach && len(s.Workspaces) > 0 && s.Refusal(agent, workspace, runner) == ""
}

// CredentialRefusedError is a credential set a task names that it may not
// use: the set does not exist (Scope ""), or Scope does not match the
// task's Value (its agent, workspace or runner).
type CredentialRefusedError struct {
	Set   string
	Scope string
	Value string
}

func (e *CredentialRefusedError) Error() string {
	if e.Scope == "" {
		return fmt.Sprintf("credential set %s does not exist in the task's org", e.Set)
	}
	what := map[string]string{ScopeAgents: "agent", ScopeWorkspaces: "workspace", ScopeRunners: "runner"}[e.Scope]
	return fmt.Sprintf("credential set %s may not be used by this task: %s %q does not match the set's %s", e.Set, what, e.Value, e.Scope)
}

// CredentialRequest is what a runner asks for at the start of a step: the
// credential sets its task's input names (named and attached), for the
// task's workspace as the step uses it. The org and runner are the
// runner's own.
type CredentialRequest struct {
	Org       string
	RunnerID  string
	TaskID    string
	Workspace string
	Sets      []string
}

// CredentialDelivery is one credential set as a step receives it: its
// values still sealed under the org's key, and its OIDC configuration.
type CredentialDelivery struct {
	Name            string          `json:"name"`
	SealedEnv       string          `json:"sealed_env,omitempty"`
	SealedVariables string          `json:"sealed_variables,omitempty"`
	OIDC            *CredentialOIDC `json:"oidc,omitempty"`
}

// DeliverCredentials returns the sets req names, in its order, for a task
// of agent, checking each against agent, req.Workspace and req.RunnerID as
// they are now: the first set that no longer exists or no longer serves
// the task is a *CredentialRefusedError. Both the runner API and
// LocalCredentials answer with it.
func DeliverCredentials(ctx context.Context, sets CredentialSetStore, agent string, req CredentialRequest) ([]CredentialDelivery, error) {
	out := make([]CredentialDelivery, 0, len(req.Sets))
	for _, name := range req.Sets {
		set, err := sets.GetCredentialSet(ctx, req.Org, name)
		if errors.Is(err, ErrNotFound) {
			return nil, &CredentialRefusedError{Set: name}
		}
		if err != nil {
			return nil, fmt.Errorf("reading credential set %s: %w", name, err)
		}
		if scope := set.Refusal(agent, req.Workspace, req.RunnerID); scope != "" {
			value := map[string]string{ScopeAgents: agent, ScopeWorkspaces: req.Workspace, ScopeRunners: req.RunnerID}[scope]
			return nil, &CredentialRefusedError{Set: name, Scope: scope, Value: value}
		}
		out = append(out, CredentialDelivery{Name: set.Name, SealedEnv: set.SealedEnv, SealedVariables: set.SealedVariables, OIDC: set.OIDC})
	}
	return out, nil
}

// LocalCredentials delivers credential sets straight from a store, to the
// runners that hold one (terratask dev's own, `terratask runner --store`),
// as the runner API's route does for the others: the task must be of the
// runner's org and name its runner, and its agent is the stored one.
type LocalCredentials struct{ Store Store }

// TaskCredentials implements activities.CredentialSource.
func (l LocalCredentials) TaskCredentials(ctx context.Context, req CredentialRequest) ([]CredentialDelivery, error) {
	t, err := l.Store.GetTask(ctx, req.Org, req.TaskID)
	if err != nil {
		return nil, fmt.Errorf("reading task %s: %w", req.TaskID, err)
	}
	if t.RunnerID != req.RunnerID {
		return nil, fmt.Errorf("task %s is not runner %s's: %w", req.TaskID, req.RunnerID, ErrNotFound)
	}
	return DeliverCredentials(ctx, l.Store, t.AgentID, req)
}

// CredentialSource is one provider of a step's secrets, for Clash: the
// task itself or a credential set, and the names it sets.
type CredentialSource struct {
	// Name is the set's name, or "" for the task's own values.
	Name string
	// Env are environment variable names; Variables Terraform variable
	// names (sensitive or plain).
	Env       []string
	Variables []string
}

// Clash returns the first name two sources both set, and those two
// sources' names, or ok false when none does. A source's env TF_VAR_x sets
// variable x too: Terraform's var file would override one with the other.
// Neither a task nor another set may silently override a set's value.
func Clash(sources []CredentialSource) (name, a, b string, ok bool) {
	env, vars := map[string]string{}, map[string]string{}
	for _, src := range sources {
		mine := map[string]bool{}
		for _, e := range src.Env {
			if other, dup := env[e]; dup {
				return e, other, src.Name, true
			}
			env[e] = src.Name
			if v, isVar := cutVarEnv(e); isVar {
				mine[v] = true
			}
		}
		for _, v := range src.Variables {
			mine[v] = true
		}
		for _, v := range slices.Sorted(maps.Keys(mine)) {
			if other, dup := vars[v]; dup {
				return v, other, src.Name, true
			}
			vars[v] = src.Name
		}
	}
	return "", "", "", false
}

// cutVarEnv is the variable an env name TF_VAR_x sets.
func cutVarEnv(name string) (string, bool) {
	const prefix = "TF_VAR_"
	if len(name) > len(prefix) && name[:len(prefix)] == prefix {
		return name[len(prefix):], true
	}
	return "", false
}
