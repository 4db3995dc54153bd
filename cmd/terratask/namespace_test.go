package main

import (
	"context"
	"strings"
	"testing"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/server/temporaltest"
)

func TestNamespaceCreate(t *testing.T) {
	cleanEnv(t)
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	addr := ts.GetFrontendHostPort()
	for i := 0; i < 2; i++ { // the second run finds it and succeeds
		code, out, errOut := runCLI(t, "namespace", "create", "--temporal-address", addr, "--namespace", "prod", "--retention", "48h")
		if code != 0 || !strings.Contains(out, "namespace prod ready") {
			t.Fatalf("run %d: exit %d, stdout %q, stderr %q", i, code, out, errOut)
		}
	}
	resp, err := ts.GetDefaultClient().WorkflowService().DescribeNamespace(context.Background(), &workflowservice.DescribeNamespaceRequest{Namespace: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration().Hours(); got != 48 {
		t.Errorf("retention %vh, want 48h", got)
	}
}

func TestNamespaceUsage(t *testing.T) {
	cleanEnv(t)
	for _, args := range [][]string{{"namespace"}, {"namespace", "delete"}} {
		if code, _, errOut := runCLI(t, args...); code != 2 || !strings.Contains(errOut, "namespace create") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}
