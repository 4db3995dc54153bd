package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Credential sets (issue 22): the org's values a task names (or that are
// attached to its workspace) reach the steps that run its code as the
// task's own env and sensitive_variables do: in the engine's environment
// and the var file, masked in logs, plans and errors by the step's masker.
// A set's env TF_VAR_NAME is Terraform's variable NAME, as Terraform reads
// it: it goes in the var file (a string), since terraform-exec keeps
// TF_VAR_ out of the engine's environment.
// They are fetched, sealed under the org's key, when each step starts, so
// a set changed since the task was created applies to its later steps,
// and one that no longer serves it fails the step.

// credentialTimeout bounds the fetch of a step's credential sets.
const credentialTimeout = 30 * time.Second

// usesCredentials reports whether step runs task code, and so gets the
// task's credential sets.
func usesCredentials(step task.Step) bool {
	switch step {
	case task.StepInitializing, task.StepPlanning, task.StepApplying, task.StepDestroying:
		return true
	}
	return false
}

// withCredentials fetches and opens the credential sets of task in and
// returns secrets, the task's own, with theirs added, and the sets as
// delivered (their OIDC configuration; values left out). A name that the
// task and a set, or two sets, both give is a configuration_error naming
// both: a task may not silently override an admin's credential.
func (r *Runner) withCredentials(ctx context.Context, in task.Input, secrets task.Secrets) (task.Secrets, []store.CredentialDelivery, error) {
	names := in.CredentialSetNames()
	if len(names) == 0 {
		return secrets, nil, nil
	}
	switch {
	case r.Credentials == nil:
		return secrets, nil, internalErrorf("the task uses credential sets (%s) but runner %s has no way to fetch them", strings.Join(names, ", "), r.RunnerID)
	case r.Secrets == nil:
		return secrets, nil, configErrorf("the task uses credential sets (%s) but this runner has no secret key to open them", strings.Join(names, ", "))
	}
	_, ws := stateWorkspace(in)
	fctx, cancel := context.WithTimeout(ctx, credentialTimeout)
	defer cancel()
	sets, err := r.Credentials.TaskCredentials(fctx, store.CredentialRequest{Org: r.Org, RunnerID: r.RunnerID, TaskID: in.ID, Workspace: ws, Sets: names})
	var refused *store.CredentialRefusedError
	switch {
	case errors.As(err, &refused):
		return secrets, nil, configErrorf("%v (as the set is now: a step gets a task's credential sets when it starts)", refused)
	case err != nil:
		return secrets, nil, transientError("fetching the task's credential sets", err)
	case len(sets) != len(names):
		return secrets, nil, transientError("fetching the task's credential sets", fmt.Errorf("asked for %d sets, got %d", len(names), len(sets)))
	}
	own := store.CredentialSource{Env: slices.Sorted(maps.Keys(secrets.Env)), Variables: slices.Sorted(maps.Keys(secrets.SensitiveVariables))}
	own.Variables = append(own.Variables, slices.Sorted(maps.Keys(in.Params.Variables))...)
	sources := []store.CredentialSource{own}
	out := task.Secrets{Env: maps.Clone(secrets.Env), SensitiveVariables: maps.Clone(secrets.SensitiveVariables)}
	if out.Env == nil {
		out.Env = map[string]string{}
	}
	if out.SensitiveVariables == nil {
		out.SensitiveVariables = map[string]any{}
	}
	delivered := make([]store.CredentialDelivery, len(sets))
	for i, set := range sets {
		env, err := r.Secrets.Open(set.SealedEnv)
		if err == nil {
			var vars task.Secrets
			vars, err = r.Secrets.Open(set.SealedVariables)
			env.SensitiveVariables = vars.SensitiveVariables
		}
		if err != nil {
			return secrets, nil, configErrorf("cannot open credential set %s: it is not sealed under the key this runner holds for org %s", set.Name, r.Org)
		}
		sources = append(sources, store.CredentialSource{Name: set.Name,
			Env: slices.Sorted(maps.Keys(env.Env)), Variables: slices.Sorted(maps.Keys(env.SensitiveVariables))})
		if name, a, b, clash := store.Clash(sources); clash {
			who := "the task"
			if a != "" {
				who = "credential set " + a
			}
			return secrets, nil, configErrorf("%s is set by both %s and credential set %s: a task may not override a credential set's values, nor two sets one another's", name, who, b)
		}
		for k, v := range env.Env {
			if name, ok := strings.CutPrefix(k, "TF_VAR_"); ok && name != "" {
				// terraform-exec keeps TF_VAR_ out of the engine's
				// environment: the variable goes in the var file, as a
				// sensitive one.
				out.SensitiveVariables[name] = v
				continue
			}
			out.Env[k] = v
		}
		maps.Copy(out.SensitiveVariables, env.SensitiveVariables)
		delivered[i] = store.CredentialDelivery{Name: set.Name, OIDC: set.OIDC}
	}
	return out, delivered, nil
}
