package oidc

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The run phases a token is minted for: the step of the task that reads it.
const (
	PhasePlan  = "plan"
	PhaseApply = "apply"
)

// Claims is what a step's token says: who runs what, where, and for whom.
// Org, Agent, Phase, TaskID and Audience are required; Workspace is empty
// for a task on a workspace of its own; RunnerID and KeyName may be empty.
type Claims struct {
	// Org, Workspace and Agent name the task's org, its workspace and the
	// agent it runs for; with Phase they make the token's sub (see
	// Subject).
	Org       string
	Workspace string
	Agent     string
	// Phase is PhasePlan or PhaseApply.
	Phase string
	// TaskID, RunnerID and KeyName (the API key that created the task)
	// are claims of their own, not part of sub.
	TaskID   string
	RunnerID string
	KeyName  string
	// Audience is the token's aud: the relying party's (see
	// ProviderConfig.TokenAudience for each cloud's default).
	Audience string
	// TTL is how long the token is valid: 0 means the issuer's default;
	// more than the issuer's MaxTTL is cut to MaxTTL (Mint returns the
	// expiry it gave). Long steps renew their token (see Refresher).
	TTL time.Duration
}

// TokenClaims is the JSON payload of a minted token, in the order Mint
// writes it. A relying party decodes it (go-oidc's IDToken.Claims, for
// one) to read the terratask_* claims.
type TokenClaims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
	ID        string `json:"jti"`
	Org       string `json:"terratask_org"`
	Workspace string `json:"terratask_workspace"`
	Agent     string `json:"terratask_agent"`
	RunPhase  string `json:"terratask_run_phase"`
	TaskID    string `json:"terratask_task_id"`
	RunnerID  string `json:"terratask_runner_id"`
	Key       string `json:"terratask_key"`
}

// ClaimsSupported lists the claims every token carries, as discovery's
// claims_supported says.
var ClaimsSupported = []string{
	"iss", "sub", "aud", "iat", "nbf", "exp", "jti",
	"terratask_org", "terratask_workspace", "terratask_agent", "terratask_run_phase",
	"terratask_task_id", "terratask_runner_id", "terratask_key",
}

// maxComponent bounds each of org, workspace and agent in sub (terratask's
// own IDs are at most 128 characters).
const maxComponent = 128

// maxClaim bounds the other string claims.
const maxClaim = 256

// componentChar reports whether c may appear in an org, workspace or agent
// of sub: the characters terratask's IDs are made of (org and key names
// `[A-Za-z0-9@._:+-]`, agent IDs `[A-Za-z0-9._:@-]`, workspaces
// `[A-Za-z0-9._-]`).
func componentChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("._:@+-", c) >= 0
}

// checkComponent returns an error unless s may be the component name of
// sub (empty only when empty is allowed).
func checkComponent(name, s string, empty bool) error {
	switch {
	case s == "" && !empty:
		return fmt.Errorf("oidc: %s is required", name)
	case len(s) > maxComponent:
		return fmt.Errorf("oidc: %s is longer than %d characters", name, maxComponent)
	}
	for i := 0; i < len(s); i++ {
		if !componentChar(s[i]) {
			return fmt.Errorf("oidc: %s %q: only ASCII letters, digits and ._:@+- may appear in a token's sub", name, s)
		}
	}
	return nil
}

// EscapeComponent returns s as it appears in sub: each ':' (the separator
// of sub's fields) becomes "%3A". '%' itself never appears in a component
// (Subject refuses it), so the encoding is unambiguous and reversible.
func EscapeComponent(s string) string { return strings.ReplaceAll(s, ":", "%3A") }

// Subject returns a token's sub for a step:
//
//	org:<org>:workspace:<workspace>:agent:<agent>:run_phase:<plan|apply>
//
// where each of org, workspace and agent is escaped by EscapeComponent (a
// ':' in it becomes "%3A"). org and agent are required; workspace is empty
// for a task on a workspace of its own ("workspace::agent"). Components
// are limited to ASCII letters, digits and ._:@+- (terratask's IDs), so no
// component holds a '*' or '?' that could read as a trust policy's
// wildcard, nor a '%' that would make the escaping ambiguous.
func Subject(org, workspace, agent, phase string) (string, error) {
	if err := checkComponent("org", org, false); err != nil {
		return "", err
	}
	if err := checkComponent("workspace", workspace, true); err != nil {
		return "", err
	}
	if err := checkComponent("agent", agent, false); err != nil {
		return "", err
	}
	if phase != PhasePlan && phase != PhaseApply {
		return "", fmt.Errorf("oidc: run phase %q: must be %q or %q", phase, PhasePlan, PhaseApply)
	}
	return "org:" + EscapeComponent(org) + ":workspace:" + EscapeComponent(workspace) +
		":agent:" + EscapeComponent(agent) + ":run_phase:" + phase, nil
}

// checkClaim returns an error unless s may be the value of the claim name:
// at most maxClaim printable ASCII characters without spaces (empty only
// when empty is allowed).
func checkClaim(name, s string, empty bool) error {
	switch {
	case s == "" && !empty:
		return fmt.Errorf("oidc: %s is required", name)
	case len(s) > maxClaim:
		return fmt.Errorf("oidc: %s is longer than %d characters", name, maxClaim)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Errorf("oidc: %s %q: only printable ASCII without spaces", name, s)
		}
	}
	return nil
}

// Validate returns an error naming the first claim c lacks or holds
// wrongly.
func (c Claims) Validate() error {
	if _, err := Subject(c.Org, c.Workspace, c.Agent, c.Phase); err != nil {
		return err
	}
	for _, f := range []struct {
		name, value string
		empty       bool
	}{
		{"task ID", c.TaskID, false}, {"runner ID", c.RunnerID, true}, {"key name", c.KeyName, true},
		{"audience", c.Audience, false},
	} {
		if err := checkClaim(f.name, f.value, f.empty); err != nil {
			return err
		}
	}
	if c.TTL < 0 {
		return errors.New("oidc: TTL must not be negative")
	}
	return nil
}
