package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
)

const hookSecret = "e2e-webhook-secret-0123456789"

// createHook creates a webhook for one agent's tasks (so tests sharing the
// dev process do not see each other's events), deleted after the test.
func createHook(t testing.TB, p *devProc, url, agent string, eventTypes ...string) api.Webhook {
	t.Helper()
	body := map[string]any{"url": url, "agent": agent, "secret": hookSecret}
	if len(eventTypes) > 0 {
		body["events"] = eventTypes
	}
	b, _ := json.Marshal(body)
	r := p.call(t, http.MethodPost, "/api/v1/webhooks", p.key, b)
	if r.code != 200 {
		t.Fatalf("create webhook: %d %s", r.code, r.body)
	}
	var h api.Webhook
	if err := json.Unmarshal(r.body, &h); err != nil {
		t.Fatal(err)
	}
	if p == shared { // a test's own dev process goes with its data
		t.Cleanup(func() { p.call(t, http.MethodDelete, "/api/v1/webhooks/"+h.ID, p.key, nil) })
	}
	return h
}

func (p *devProc) deliveryLog(t testing.TB, hookID string) []api.Delivery {
	t.Helper()
	r := p.call(t, http.MethodGet, "/api/v1/webhooks/"+hookID+"/deliveries?limit=1000", p.key, nil)
	if r.code != 200 {
		t.Fatalf("deliveries: %d %s", r.code, r.body)
	}
	var ds []api.Delivery
	if err := json.Unmarshal(r.body, &ds); err != nil {
		t.Fatal(err)
	}
	return ds
}

func uniqueAgent(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

var wantEventTypes = "task.created task.running task.step task.step task.step task.step task.completed"

// TestWebhookGetsEveryEventInOrder: a webhook receives every event of a
// task, in order, each signed (the receiver verifies), with its ID as
// X-Terratask-Delivery; the delivery log shows one successful attempt
// each; no secret is in any payload or the log.
func TestWebhookGetsEveryEventInOrder(t *testing.T) {
	t.Parallel()
	agent := uniqueAgent("agent-hook")
	rcv := newHookServer(t, hookSecret)
	hook := createHook(t, shared, rcv.URL+"/hook", agent)
	if ds := rcv.deliveries(); len(ds) != 1 || ds[0].ev.Type != "ping" || ds[0].verified != nil || ds[0].ev.Webhook.ID != hook.ID {
		t.Fatalf("ping: %+v", ds)
	}
	const token = "s3cr3t-e2e-token-never-shown"
	tk := shared.create(t, map[string]any{"name": "hooked", "agent_id": agent, "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "five"), "sensitive_variables": map[string]any{"api_token": token},
			"env": map[string]any{"E2E_SECRET_ENV": token + "-env"}}})
	shared.waitStatus(t, tk.ID, 2*time.Minute, terminal)
	waitFor(t, time.Minute, "task.completed delivered", func() bool {
		got := rcv.accepted(tk.ID)
		return len(got) > 0 && got[len(got)-1].ev.Type == "task.completed"
	})
	got := rcv.accepted(tk.ID)
	var types []string
	ids := map[string]bool{}
	for _, d := range got {
		types = append(types, string(d.ev.Type))
		if d.verified != nil || d.header.Get(events.HeaderDelivery) != d.ev.ID || d.header.Get(events.HeaderEvent) != string(d.ev.Type) || ids[d.ev.ID] {
			t.Fatalf("delivery %s: verified %v, headers %v", d.ev.ID, d.verified, d.header)
		}
		ids[d.ev.ID] = true
		for _, secret := range []string{token, hookSecret} {
			if strings.Contains(string(d.raw), secret) {
				t.Fatalf("a secret in the payload of %s", d.ev.ID)
			}
		}
	}
	if strings.Join(types, " ") != wantEventTypes {
		t.Fatalf("events %v", types)
	}
	last := got[len(got)-1].ev
	if last.Task.Status != "completed" || last.Task.Progress != 100 || last.Task.Result == nil || last.Task.Result.Output["token"] != "(sensitive)" {
		t.Fatalf("task.completed: %s", got[len(got)-1].raw)
	}
	ds := shared.deliveryLog(t, hook.ID)
	if len(ds) != 7 {
		t.Fatalf("delivery log: %+v", ds)
	}
	for _, d := range ds {
		if !d.Succeeded || d.Attempt != 1 || d.StatusCode != 200 || d.TaskID != tk.ID || !ids[d.EventID] {
			t.Fatalf("delivery %+v", d)
		}
	}
	for _, path := range []string{"/api/v1/webhooks/" + hook.ID + "/deliveries", "/api/v1/webhooks/" + hook.ID, "/api/v1/webhooks",
		"/api/v1/events?agent=" + agent} {
		r := shared.call(t, http.MethodGet, path, shared.key, nil)
		if strings.Contains(string(r.body), token) || strings.Contains(string(r.body), hookSecret) {
			t.Fatalf("a secret in GET %s", path)
		}
	}
}

// TestWebhookRetriesUntilAccepted: a receiver that answers 500 three times
// then 200 gets the event; the delivery log shows the four attempts.
func TestWebhookRetriesUntilAccepted(t *testing.T) {
	t.Parallel()
	agent := uniqueAgent("agent-retry")
	rcv := newHookServer(t, hookSecret)
	rcv.respond = func(ev api.Event, nth int) int {
		if ev.Type == "task.completed" && nth <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	hook := createHook(t, shared, rcv.URL, agent, "task.completed")
	tk := shared.create(t, map[string]any{"name": "retried", "agent_id": agent, "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "five")}})
	shared.waitStatus(t, tk.ID, 2*time.Minute, terminal)
	waitFor(t, 2*time.Minute, "task.completed accepted", func() bool { return len(rcv.accepted(tk.ID)) == 1 })
	var deliveryIDs []string
	for _, d := range rcv.deliveries()[1:] { // after the ping
		deliveryIDs = append(deliveryIDs, d.header.Get(events.HeaderDelivery))
		if d.verified != nil {
			t.Fatalf("attempt not signed: %v", d.verified)
		}
	}
	if len(deliveryIDs) != 4 || deliveryIDs[0] != deliveryIDs[3] {
		t.Fatalf("the receiver got %v", deliveryIDs)
	}
	// The attempt is logged once the receiver's answer is back: the
	// receiver may see the fourth attempt before the log holds it.
	var ds []api.Delivery
	waitFor(t, time.Minute, "the fourth attempt logged", func() bool {
		ds = shared.deliveryLog(t, hook.ID)
		return len(ds) >= 4
	})
	var attempts []string
	for i := len(ds) - 1; i >= 0; i-- {
		attempts = append(attempts, fmt.Sprintf("%d:%d", ds[i].Attempt, ds[i].StatusCode))
		if ds[i].EventID != deliveryIDs[0] || (ds[i].StatusCode == 500) == ds[i].Succeeded {
			t.Fatalf("attempt %+v", ds[i])
		}
	}
	if strings.Join(attempts, " ") != "1:500 2:500 3:500 4:200" {
		t.Fatalf("delivery log %v", attempts)
	}
}

// TestHangingReceiverDoesNotDelayTheTask: a receiver that never answers
// holds up nothing: the task completes while the first delivery still
// waits; once the receiver answers, every event arrives, still in order.
func TestHangingReceiverDoesNotDelayTheTask(t *testing.T) {
	t.Parallel()
	agent := uniqueAgent("agent-hang")
	rcv := newHookServer(t, hookSecret)
	createHook(t, shared, rcv.URL, agent)
	rcv.mu.Lock()
	rcv.hang = make(chan struct{})
	rcv.mu.Unlock()
	tk := shared.create(t, map[string]any{"name": "hanging receiver", "agent_id": agent, "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "five")}})
	seen := shared.waitStatus(t, tk.ID, 2*time.Minute, terminal)
	if seen[len(seen)-1].Status != "completed" {
		t.Fatalf("task %+v", seen[len(seen)-1])
	}
	rcv.mu.Lock()
	answered := len(rcv.got) - 1 // the ping was answered
	close(rcv.hang)
	rcv.hang = nil
	rcv.mu.Unlock()
	if answered != 0 {
		t.Fatalf("the hanging receiver answered %d deliveries before the task completed", answered)
	}
	waitFor(t, 2*time.Minute, "every event after the receiver recovers", func() bool {
		got := rcv.accepted(tk.ID)
		return len(got) == 7
	})
	var types []string
	for _, d := range rcv.accepted(tk.ID) {
		types = append(types, string(d.ev.Type))
	}
	if strings.Join(types, " ") != wantEventTypes {
		t.Fatalf("events %v", types)
	}
}

// TestNotifyCallback: a task's notify URL on an allowed host gets its
// events, signed with the org's signing secret; a host not allowed is a
// 400 naming parameters.notify.url.
func TestNotifyCallback(t *testing.T) {
	t.Parallel()
	r := shared.call(t, http.MethodGet, "/api/v1/webhooks/signing-secret", shared.key, nil)
	var sec api.SigningSecret
	if err := json.Unmarshal(r.body, &sec); err != nil || r.code != 200 || sec.Secret == "" {
		t.Fatalf("signing secret: %d %s", r.code, r.body)
	}
	rcv := newHookServer(t, sec.Secret)
	tk := shared.create(t, map[string]any{"name": "notified", "agent_id": "agent-notify", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "five"),
			"notify": map[string]any{"url": rcv.URL + "/cb?task=1", "events": []string{"task.completed", "task.failed"}}}})
	shared.waitStatus(t, tk.ID, 2*time.Minute, terminal)
	waitFor(t, time.Minute, "notify delivered", func() bool { return len(rcv.accepted(tk.ID)) == 1 })
	d := rcv.accepted(tk.ID)[0]
	if d.ev.Type != "task.completed" || d.verified != nil || strings.Contains(string(d.raw), sec.Secret) {
		t.Fatalf("notify delivery %s: %v", d.raw, d.verified)
	}
	for _, url := range []string{"https://example.com/hook", "http://127.0.0.2:9/"} {
		b, _ := json.Marshal(map[string]any{"name": "n", "agent_id": "agent-notify", "runner_id": "local",
			"parameters": map[string]any{"notify": map[string]any{"url": url}}})
		r := shared.call(t, http.MethodPost, "/api/v1/tasks", shared.key, b)
		if code, _, details := r.errorOf(t); r.code != 400 || code != "bad_request" || details["field"] != "parameters.notify.url" {
			t.Fatalf("notify to %s: %d %s", url, r.code, r.body)
		}
	}
}

// TestDeliveryOutlivesAKill: SIGKILL `terratask dev` while a delivery is
// failing; after a restart, the event is delivered once the receiver
// answers.
func TestDeliveryOutlivesAKill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, err := startDev(dir, "kill-delivery-key", "--webhook-allow", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	rcv := newHookServer(t, hookSecret)
	accept := false
	rcv.respond = func(ev api.Event, _ int) int {
		if ev.Type == "ping" || accept {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	}
	hook := createHook(t, p, rcv.URL, "agent-kill", "task.completed")
	tk := p.create(t, map[string]any{"name": "delivered after a kill", "agent_id": "agent-kill", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "five")}})
	p.waitStatus(t, tk.ID, 2*time.Minute, terminal)
	waitFor(t, time.Minute, "two failed attempts", func() bool { return len(p.deliveryLog(t, hook.ID)) >= 2 })
	p.kill()
	rcv.mu.Lock()
	accept = true
	rcv.mu.Unlock()
	p2, err := startDev(dir, "kill-delivery-key", "--webhook-allow", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = p2.stop()
		}
	}()
	waitFor(t, 3*time.Minute, "delivery after the restart", func() bool { return len(rcv.accepted(tk.ID)) == 1 })
	ds := p2.deliveryLog(t, hook.ID)
	if len(ds) < 3 || !ds[0].Succeeded || ds[len(ds)-1].Succeeded || ds[len(ds)-1].StatusCode != 503 {
		t.Fatalf("delivery log %+v", ds)
	}
	if d := rcv.accepted(tk.ID)[0]; d.verified != nil || d.ev.Type != "task.completed" {
		t.Fatalf("delivered %s: %v", d.raw, d.verified)
	}
	// A stop with streams open ends them and exits cleanly.
	f := p2.follow(t, waitCtx(t, time.Minute), "/api/v1/events?follow=true", "")
	stopped = true
	if err := p2.stop(); err != nil {
		t.Fatal(err)
	}
	if ev, err := f.Next(); err != io.EOF {
		t.Fatalf("the stream after the stop: %+v %v", ev, err)
	}
}
