package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/api"
)

// BenchmarkEventLatency measures, on the shared `terratask dev`, how late a
// client learns what a task does, pushed against polled:
//   - a Terraform log line, from its stored timestamp: to an SSE follower,
//     and to a client polling GET /logs (with its cursor) every second;
//   - the task's completion, from its task.completed event's occurred_at:
//     to a webhook receiver, and to a client polling GET /status every
//     second.
//
// Each iteration runs one task of the slow fixture (four resources, one
// second of output each).
func BenchmarkEventLatency(b *testing.B) {
	var sseLags, pollLags, hookLags, statusLags []time.Duration
	rcv := newHookServer(b, hookSecret)
	agent := uniqueAgent("agent-latency")
	createHook(b, shared, rcv.URL, agent, "task.completed")
	for range b.N {
		tk := slowTask(b, shared, "latency", agent)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		var wg sync.WaitGroup
		// SSE follower.
		var s streamed
		f := shared.follow(b, ctx, "/api/v1/tasks/"+tk.ID+"/logs?follow=true", "")
		wg.Add(1)
		go func() { defer wg.Done(); f.readUntil(b, &s, nil) }()
		// A log poller: GET /logs every second (all of them; the task has
		// about a hundred), noting when each line first shows.
		polled := map[string]time.Time{} // timestamp+message -> first seen
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var out api.Logs
				shared.request(b, http.MethodGet, "/api/v1/tasks/"+tk.ID+"/logs?limit=10000", nil, &out)
				now := time.Now()
				for _, e := range out.Logs {
					if _, ok := polled[e.Timestamp+e.Message]; !ok {
						polled[e.Timestamp+e.Message] = now
					}
				}
				var st Status
				shared.request(b, http.MethodGet, "/api/v1/tasks/"+tk.ID+"/status", nil, &st)
				if terminal(st) {
					return
				}
				time.Sleep(time.Second)
			}
		}()
		// A status poller: GET /status every second.
		var polledDone time.Time
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var st Status
				shared.request(b, http.MethodGet, "/api/v1/tasks/"+tk.ID+"/status", nil, &st)
				if terminal(st) {
					polledDone = time.Now()
					return
				}
				time.Sleep(time.Second)
			}
		}()
		wg.Wait()
		waitFor(b, time.Minute, "webhook", func() bool { return len(rcv.accepted(tk.ID)) == 1 })
		cancel()
		d := rcv.accepted(tk.ID)[0]
		occurred, err := time.Parse(time.RFC3339Nano, d.ev.OccurredAt)
		if err != nil {
			b.Fatal(err)
		}
		hookLags = append(hookLags, d.at.Sub(occurred))
		statusLags = append(statusLags, polledDone.Sub(occurred))
		for i, e := range s.logs {
			var meta struct {
				Component string `json:"component"`
			}
			_ = json.Unmarshal(e.Metadata, &meta)
			ts, err := time.Parse(time.RFC3339Nano, e.Timestamp)
			if err != nil || meta.Component != "terraform" {
				continue
			}
			sseLags = append(sseLags, s.received[i].Sub(ts))
			if seen, ok := polled[e.Timestamp+e.Message]; ok {
				pollLags = append(pollLags, seen.Sub(ts))
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(median(sseLags)), "line-sse-ms")
	b.ReportMetric(ms(median(pollLags)), "line-poll1s-ms")
	b.ReportMetric(ms(median(hookLags)), "done-webhook-ms")
	b.ReportMetric(ms(median(statusLags)), "done-poll1s-ms")
}
