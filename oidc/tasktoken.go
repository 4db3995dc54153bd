package oidc

import (
	"context"
	"fmt"
	"time"

	"github.com/terratask/terratask/store"
)

// TaskTokens mints the tokens of tasks' steps for their oidc credential
// sets (issue 22), with the checks of the runner API's credentials route:
// the set exists, still serves the task's agent, its workspace as the step
// uses it and the runner, and has an oidc configuration. The runner API's
// tokens route and dev's in-process runners (LocalTokens) use it. A nil
// Issuer (a server without --oidc-issuer) answers store.ErrNoOIDCIssuer.
type TaskTokens struct {
	Issuer *Issuer
	Sets   store.CredentialSetStore
}

// Mint mints the token of req for task t (the caller has checked that t is
// req.Org's and names req.RunnerID); key names the API key that created
// the task ("" when unknown). A set refused is a
// *store.CredentialRefusedError, a set without oidc store.ErrNotOIDCSet.
func (tt TaskTokens) Mint(ctx context.Context, t store.Task, key string, req store.TokenRequest) (string, time.Time, error) {
	if tt.Issuer == nil {
		return "", time.Time{}, store.ErrNoOIDCIssuer
	}
	if req.Phase != PhasePlan && req.Phase != PhaseApply {
		return "", time.Time{}, fmt.Errorf("oidc: phase %q is not %q or %q", req.Phase, PhasePlan, PhaseApply)
	}
	sets, err := store.DeliverCredentials(ctx, tt.Sets, t.AgentID, store.CredentialRequest{
		Org: req.Org, RunnerID: req.RunnerID, TaskID: t.ID, Workspace: req.Workspace, Sets: []string{req.Set}})
	if err != nil {
		return "", time.Time{}, err
	}
	if len(sets) != 1 || sets[0].OIDC == nil {
		return "", time.Time{}, fmt.Errorf("credential set %s: %w", req.Set, store.ErrNotOIDCSet)
	}
	p := FromCredentialOIDC(*sets[0].OIDC)
	return tt.Issuer.Mint(ctx, Claims{
		Org: t.Org, Workspace: req.Workspace, Agent: t.AgentID, Phase: req.Phase,
		TaskID: t.ID, RunnerID: t.RunnerID, KeyName: key, Audience: p.TokenAudience(), TTL: req.TTL,
	})
}

// LocalTokens mints tokens straight from a store, for the runners that run
// in the control plane (terratask dev's own), as store.LocalCredentials
// delivers their credential sets: the task must be of the runner's org and
// name its runner, its agent is the stored one. It implements
// activities.TokenSource.
type LocalTokens struct {
	Tokens TaskTokens
	Store  store.Store
}

// TaskToken implements activities.TokenSource.
func (l LocalTokens) TaskToken(ctx context.Context, req store.TokenRequest) (string, time.Time, error) {
	if l.Tokens.Issuer == nil {
		return "", time.Time{}, store.ErrNoOIDCIssuer
	}
	t, err := l.Store.GetTask(ctx, req.Org, req.TaskID)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("reading task %s: %w", req.TaskID, err)
	}
	if t.RunnerID != req.RunnerID {
		return "", time.Time{}, fmt.Errorf("task %s is not runner %s's: %w", req.TaskID, req.RunnerID, store.ErrNotFound)
	}
	return l.Tokens.Mint(ctx, t, req.Key, req)
}

// FromCredentialOIDC is the ProviderConfig of a credential set's oidc
// field (SessionName left empty).
func FromCredentialOIDC(o store.CredentialOIDC) ProviderConfig {
	return ProviderConfig{Provider: o.Provider, Audience: o.Audience, AWSRoleARN: o.AWSRoleARN,
		GCPWorkloadProvider: o.GCPWorkloadProvider, GCPServiceAccount: o.GCPServiceAccount,
		AzureClientID: o.AzureClientID, AzureTenantID: o.AzureTenantID}
}
