package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/terratask/terratask/oidc"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// OIDC workload identity (issue 22): a step that runs task code gets, for
// each of its credential sets with an oidc configuration, a token of the
// control plane's issuer in a file of its work dir, the files its cloud
// reads beside it, and the environment that names them (oidc.ProviderFiles):
//
//	work/<task-id>/.terratask/oidc/<set>/token   0600, renewed for long steps
//
// The files are removed when the step ends; the token is masked in the
// step's logs.

// TokenSource mints the OIDC token of a step of a task for one of its
// credential sets, after the checks of CredentialSource. runnerapi.Client
// (over the runner API) and oidc.LocalTokens (dev's runners) satisfy it. A
// control plane without --oidc-issuer answers store.ErrNoOIDCIssuer.
type TokenSource interface {
	TaskToken(ctx context.Context, req store.TokenRequest) (token string, expires time.Time, err error)
}

// tokenTimeout bounds one token request.
const tokenTimeout = 30 * time.Second

// oidcPhase is the token phase of step: plan for init and plan, apply for
// apply and destroy.
func oidcPhase(step task.Step) string {
	if step == task.StepApplying || step == task.StepDestroying {
		return oidc.PhaseApply
	}
	return oidc.PhasePlan
}

// startOIDC mints and writes the tokens of the step's oidc credential sets
// and returns them (for the masker); the environment goes in s.oidcEnv.
func (s *stepRun) startOIDC(ctx context.Context) ([]string, error) {
	var tokens []string
	for _, set := range s.credentialSets {
		if set.OIDC == nil {
			continue
		}
		if s.r.Tokens == nil {
			return tokens, configErrorf("credential set %s has oidc but runner %s cannot get tokens (this server has no --oidc-issuer?)", set.Name, s.r.RunnerID)
		}
		if !s.hasDir {
			return tokens, internalErrorf("credential set %s has oidc but the task has no work dir for its token", set.Name)
		}
		dir := filepath.Join(s.paths.private, "oidc", set.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return tokens, transientError("creating the OIDC token directory", err)
		}
		s.oidcDirs = append(s.oidcDirs, dir)
		tokenPath := filepath.Join(dir, "token")
		p := oidc.FromCredentialOIDC(*set.OIDC)
		p.SessionName = oidc.SessionName(s.in.Task.ID)
		files, env, err := oidc.ProviderFiles(p, tokenPath)
		if err != nil {
			return tokens, configErrorf("credential set %s: %v", set.Name, err)
		}
		for k, v := range env {
			if old, ok := s.oidcEnv[k]; ok && old != v {
				return tokens, configErrorf("credential sets with oidc: two sets set %s (a step can use one set per cloud)", k)
			}
			if s.oidcEnv == nil {
				s.oidcEnv = map[string]string{}
			}
			s.oidcEnv[k] = v
		}
		for path, b := range files {
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return tokens, transientError("writing the OIDC provider files", err)
			}
		}
		_, ws := stateWorkspace(s.in.Task)
		req := store.TokenRequest{Org: s.r.Org, RunnerID: s.r.RunnerID, TaskID: s.in.Task.ID, Workspace: ws,
			Set: set.Name, Phase: oidcPhase(s.step), Key: s.in.Task.CreatedBy}
		tokenSource := s.r.Tokens
		ref := &oidc.Refresher{Path: tokenPath, Mint: func(ctx context.Context) (string, time.Time, error) {
			mctx, cancel := context.WithTimeout(ctx, tokenTimeout)
			defer cancel()
			return tokenSource.TaskToken(mctx, req)
		}}
		if err := ref.Start(ctx); err != nil {
			var refused *store.CredentialRefusedError
			switch {
			case errors.As(err, &refused):
				return tokens, configErrorf("%v (as the set is now: a step gets its OIDC token when it starts)", refused)
			case errors.Is(err, store.ErrNoOIDCIssuer), errors.Is(err, store.ErrNotOIDCSet):
				return tokens, configErrorf("credential set %s: %v", set.Name, err)
			}
			return tokens, transientError(fmt.Sprintf("getting the OIDC token of credential set %s", set.Name), err)
		}
		s.refreshers = append(s.refreshers, ref)
		first, err := os.ReadFile(tokenPath)
		if err != nil {
			return tokens, transientError("reading the OIDC token file back", err)
		}
		tokens = append(tokens, string(first))
	}
	return tokens, nil
}

// stopOIDC stops renewing the step's tokens and removes their files.
func (s *stepRun) stopOIDC() {
	for _, ref := range s.refreshers {
		_ = ref.Stop()
	}
	s.refreshers = nil
	for _, dir := range s.oidcDirs {
		_ = os.RemoveAll(dir)
	}
	s.oidcDirs = nil
}
