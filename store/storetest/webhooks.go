package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// testWebhooks: create, get, list (oldest first), delete with its deliveries,
// org isolation; secrets round-trip byte for byte.
func (h *harness) testWebhooks(t *testing.T) {
	s, ctx := h.open(t), t.Context()
	orgA, orgB := h.name("org"), h.name("org")
	a1 := store.Webhook{ID: h.name("wh"), Org: orgA, URL: "https://a.example/1", Events: []task.EventType{task.EventTaskCompleted, task.EventTaskFailed},
		AgentID: "agent-1", RunnerID: "runner-1", SealedSecret: []byte{0, 0xff, 'x', 0}, CreatedAt: baseTime, CreatedBy: "admin"}
	a2 := store.Webhook{ID: h.name("wh"), Org: orgA, URL: "http://a.example/2", SealedSecret: []byte("s"), CreatedAt: baseTime.Add(time.Second)}
	b1 := store.Webhook{ID: h.name("wh"), Org: orgB, URL: "http://b.example", SealedSecret: []byte("t"), CreatedAt: baseTime}
	for _, w := range []store.Webhook{a2, a1, b1} {
		if err := s.CreateWebhook(ctx, w); err != nil {
			t.Fatalf("CreateWebhook: %v", err)
		}
	}
	if err := s.CreateWebhook(ctx, a1); err == nil {
		t.Fatal("a webhook ID was stored twice")
	}
	same := func(got, want store.Webhook) {
		t.Helper()
		if got.ID != want.ID || got.Org != want.Org || got.URL != want.URL || fmt.Sprint(got.Events) != fmt.Sprint(want.Events) ||
			got.AgentID != want.AgentID || got.RunnerID != want.RunnerID || !bytes.Equal(got.SealedSecret, want.SealedSecret) ||
			!got.CreatedAt.Equal(us(want.CreatedAt)) || got.CreatedBy != want.CreatedBy || len(got.Events) != len(want.Events) {
			t.Fatalf("webhook: got %+v, want %+v", got, want)
		}
	}
	got, err := s.GetWebhook(ctx, orgA, a1.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(got, a1)
	if _, err := s.GetWebhook(ctx, orgB, a1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetWebhook of another org: %v", err)
	}
	list, err := s.ListWebhooks(ctx, orgA)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListWebhooks: %v %+v", err, list)
	}
	same(list[0], a1)
	same(list[1], a2)

	// Deliveries of a1 go with it; b1's stay.
	for i := 1; i <= 3; i++ {
		for _, w := range []store.Webhook{a1, b1} {
			d := store.Delivery{Org: w.Org, EventID: "ev-" + w.ID, EventType: task.EventTaskCompleted, TaskID: "t", Target: w.ID,
				Attempt: i, StatusCode: 500, Latency: time.Millisecond, Error: "500", At: baseTime}
			if err := s.AddDelivery(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.DeleteWebhook(ctx, orgB, a1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteWebhook of another org: %v", err)
	}
	if err := s.DeleteWebhook(ctx, orgA, a1.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhook(ctx, orgA, a1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second DeleteWebhook: %v", err)
	}
	if _, err := s.GetWebhook(ctx, orgA, a1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetWebhook after delete: %v", err)
	}
	for _, c := range []struct {
		org, target string
		n           int
	}{{orgA, a1.ID, 0}, {orgB, b1.ID, 3}} {
		ds, err := s.ListDeliveries(ctx, store.DeliveryQuery{Org: c.org, Target: c.target, Limit: 10})
		if err != nil || len(ds) != c.n {
			t.Fatalf("deliveries of %s after delete: %v %d, want %d", c.target, err, len(ds), c.n)
		}
	}
}

// testDeliveries: attempts are recorded, listed newest first,
// paged, filtered by event; Delivered sees a success.
func (h *harness) testDeliveries(t *testing.T) {
	s, ctx := h.open(t), t.Context()
	org := h.name("org")
	target := h.name("wh")
	evID := h.name("ev")
	ok, err := s.Delivered(ctx, org, evID, target)
	if err != nil || ok {
		t.Fatalf("Delivered before any attempt: %v %v", ok, err)
	}
	for i := 1; i <= 4; i++ {
		d := store.Delivery{Org: org, EventID: evID, EventType: task.EventTaskCompleted, TaskID: "task-1", Target: target,
			Attempt: i, StatusCode: 500, Latency: time.Duration(i) * time.Millisecond, Error: "receiver answered 500", At: baseTime.Add(time.Duration(i) * time.Second)}
		if i == 4 {
			d.StatusCode, d.Error, d.Succeeded = 200, "", true
		}
		if err := s.AddDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// Another event and another target.
	if err := s.AddDelivery(ctx, store.Delivery{Org: org, EventID: h.name("ev"), EventType: task.EventTaskFailed, Target: target, Attempt: 1, At: baseTime}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDelivery(ctx, store.Delivery{Org: org, EventID: evID, EventType: task.EventTaskCompleted, Target: store.NotifyTarget, Attempt: 1, At: baseTime}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListDeliveries(ctx, store.DeliveryQuery{Org: org, Target: target, EventID: evID, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("%d attempts, want 4: %+v", len(all), all)
	}
	for i, d := range all {
		want := 4 - i
		if d.Attempt != want || d.EventID != evID || d.TaskID != "task-1" || d.EventType != task.EventTaskCompleted ||
			d.Latency != time.Duration(want)*time.Millisecond || !d.At.Equal(us(baseTime.Add(time.Duration(want)*time.Second))) ||
			d.Succeeded != (want == 4) || (want < 4 && (d.StatusCode != 500 || d.Error == "")) {
			t.Fatalf("attempt %d: %+v", i, d)
		}
	}
	if page, err := s.ListDeliveries(ctx, store.DeliveryQuery{Org: org, Target: target, BeforeID: all[1].ID, Limit: 10}); err != nil ||
		len(page) != 2 || page[0].ID != all[2].ID {
		t.Fatalf("page before %d: %v %+v", all[1].ID, err, page)
	}
	if n, err := s.ListDeliveries(ctx, store.DeliveryQuery{Org: org, Target: target, Limit: 10}); err != nil || len(n) != 5 {
		t.Fatalf("all attempts to the target: %v %d", err, len(n))
	}
	if other, err := s.ListDeliveries(ctx, store.DeliveryQuery{Org: h.name("org"), Target: target, Limit: 10}); err != nil || len(other) != 0 {
		t.Fatalf("another org sees %d attempts (%v)", len(other), err)
	}
	if ok, err := s.Delivered(ctx, org, evID, target); err != nil || !ok {
		t.Fatalf("Delivered after a success: %v %v", ok, err)
	}
	if ok, err := s.Delivered(ctx, org, evID, store.NotifyTarget); err != nil || ok {
		t.Fatalf("Delivered to notify (failed attempt only): %v %v", ok, err)
	}
	if _, err := s.ListDeliveries(ctx, store.DeliveryQuery{Org: org, Target: target}); err == nil {
		t.Fatal("ListDeliveries without a limit succeeded")
	}
}
