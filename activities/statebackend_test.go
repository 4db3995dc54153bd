package activities

import (
	"testing"

	"github.com/terratask/terratask/task"
)

func TestFenceOrdersAttempts(t *testing.T) {
	order := []int64{
		fence(1, task.StepInitializing, 1), fence(1, task.StepInitializing, 2), fence(1, task.StepPlanning, 1),
		fence(1, task.StepApplying, 1), fence(1, task.StepApplying, 5), fence(2, task.StepInitializing, 1),
	}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Fatalf("fences %v do not increase", order)
		}
	}
}
