package codec

import (
	"context"

	"go.temporal.io/sdk/workflow"
)

// The org of a call: the control plane's codec (package codec/control)
// encrypts the payloads of a call made under WithOrg or WorkflowWithOrg
// under that org's key, so the org's runners and codec route read them.

type orgContextKey struct{}

// WithOrg returns ctx under which a client call of the control plane
// encrypts its payloads under org's key.
func WithOrg(ctx context.Context, org string) context.Context {
	return context.WithValue(ctx, orgContextKey{}, org)
}

// OrgOf is the org ctx names (WithOrg), or "".
func OrgOf(ctx context.Context) string {
	org, _ := ctx.Value(orgContextKey{}).(string)
	return org
}

// WorkflowWithOrg returns a workflow context under which the control
// plane's own activities (on its queue) encrypt their payloads under org's
// key, as the task's runner activities do: the org's codec route reads them.
func WorkflowWithOrg(ctx workflow.Context, org string) workflow.Context {
	return workflow.WithValue(ctx, orgContextKey{}, org)
}

// WorkflowOrgOf is the org a workflow context names (WorkflowWithOrg), or "".
func WorkflowOrgOf(ctx workflow.Context) string {
	org, _ := ctx.Value(orgContextKey{}).(string)
	return org
}
