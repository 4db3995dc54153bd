package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/client"
)

// Create a task, print its log lines as they come, and wait for its result.
func Example() {
	c, err := client.New(os.Getenv("TERRATASK_ADDRESS"), client.WithAPIKey(os.Getenv("TERRATASK_API_KEY")))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	t, err := c.CreateTask(ctx, api.CreateTask{
		Name: "Deploy Application", AgentID: "agent-456", RunnerID: "local",
		Parameters: map[string]any{"app_name": "my-app", "deploy_strategy": "rolling"},
	})
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		_ = c.Follow(ctx, t.ID, func(e api.LogEntry) error {
			fmt.Println(e.Timestamp, e.Level, e.Message)
			return nil
		})
	}()
	done, err := c.Wait(ctx, t.ID)
	var apiErr *client.Error
	switch {
	case errors.As(err, &apiErr) && errors.Is(err, client.ErrNotFound):
		log.Fatalf("task %s is gone: %s", t.ID, apiErr.Message)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println(done.Status, done.Result.Output)
}
