package activities

import (
	"context"
	"time"

	"github.com/terratask/terratask/metrics"
)

// outcome names how a step or a Terraform command ended, for metrics.
func outcome(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return metrics.OutcomeSuccess
	case ctx.Err() != nil:
		return metrics.OutcomeCancelled
	default:
		return metrics.OutcomeError
	}
}

// observeCommand records a Terraform command that started at start.
func observeCommand(ctx context.Context, command string, start time.Time, err error) {
	metrics.ObserveTerraformCommand(command, outcome(ctx, err), time.Since(start))
}
