package store

import (
	"errors"
	"time"
)

// TokenRequest asks for the OIDC token of one step of a task (issue 22):
// for the credential set Set (one with an oidc configuration), the step's
// phase ("plan" for init and plan, "apply" for apply and destroy) and its
// workspace as the step uses it. The runner API's tokens route and dev's
// in-process minter both check it as the credentials route does.
type TokenRequest struct {
	Org       string
	RunnerID  string
	TaskID    string
	Workspace string
	Set       string
	Phase     string
	// TTL is how long the token should live (0: the issuer's default;
	// cut to its maximum).
	TTL time.Duration
	// Key is the name of the API key that created the task. Only an
	// in-process minter (dev's runners, which run in the control plane)
	// takes it from the request; the runner API reads it from the task.
	Key string
}

// ErrNoOIDCIssuer is the error of a token request to a server without
// --oidc-issuer.
var ErrNoOIDCIssuer = errors.New("this server has no --oidc-issuer: credential sets with oidc cannot be used")

// ErrNotOIDCSet is the error of a token request for a set without an oidc
// configuration.
var ErrNotOIDCSet = errors.New("the credential set has no oidc configuration")
