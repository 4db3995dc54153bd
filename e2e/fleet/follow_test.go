package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/terratask/terratask/events"
)

// replicaFollower follows a task's logs through one replica (a task created
// through the other), in the background, until the stream's end event.
type replicaFollower struct {
	taskID   string
	done     chan struct{}
	lines    []LogEntry
	received []time.Time
	end      bool
	err      error
}

// followThrough starts following taskID's logs through c.
func followThrough(ctx context.Context, c *apiClient, taskID string) *replicaFollower {
	f := &replicaFollower{taskID: taskID, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		f.err = f.run(ctx, c)
	}()
	return f
}

func (f *replicaFollower) run(ctx context.Context, c *apiClient) error {
	lastID := ""
	// A stream may be cut (a replica's shutdown); resume from the last id.
	for attempt := 0; attempt < 5; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1/tasks/"+f.taskID+"/logs?follow=true", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "UserKey "+c.key)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		r := events.NewSSEReader(resp.Body)
		for {
			ev, err := r.Next()
			if err != nil {
				break
			}
			switch ev.Name {
			case "log":
				var l LogEntry
				if err := json.Unmarshal(ev.Data, &l); err != nil {
					resp.Body.Close()
					return err
				}
				f.lines = append(f.lines, l)
				f.received = append(f.received, time.Now())
			case "end":
				f.end = true
				resp.Body.Close()
				return nil
			}
		}
		lastID = r.LastID()
		resp.Body.Close()
	}
	return fmt.Errorf("stream of %s cut too often", f.taskID)
}

// check compares what the follower got with the task's logs and returns
// the delays from each Terraform line's timestamp to its arrival.
func (f *replicaFollower) check(want []LogEntry) ([]time.Duration, error) {
	<-f.done
	if f.err != nil || !f.end {
		return nil, fmt.Errorf("follower of %s: %v (end %v, %d lines)", f.taskID, f.err, f.end, len(f.lines))
	}
	if len(f.lines) != len(want) {
		return nil, fmt.Errorf("follower of %s got %d lines, the task has %d", f.taskID, len(f.lines), len(want))
	}
	var lags []time.Duration
	for i, l := range f.lines {
		if l.Message != want[i].Message || l.Timestamp != want[i].Timestamp {
			return nil, fmt.Errorf("follower of %s: line %d is %+v, want %+v", f.taskID, i, l, want[i])
		}
		if ts, err := time.Parse(time.RFC3339Nano, l.Timestamp); err == nil && l.Metadata["component"] == "terraform" {
			lags = append(lags, f.received[i].Sub(ts))
		}
	}
	return lags, nil
}

func medianDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
