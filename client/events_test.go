package client_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/client"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/secret/master"
	"github.com/terratask/terratask/server"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/sqlite"
	"github.com/terratask/terratask/task"
)

// TestEventsAndWebhooks drives the client's event and webhook methods
// against a real server on a real SQLite store, over real HTTP.
func TestEventsAndWebhooks(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys, _ := auth.NewKeyring([]auth.Key{{Name: "admin", Org: "o", Role: auth.RoleAdmin, Hash: auth.HashKey("admin-key")}})
	box, _ := master.New(bytes.Repeat([]byte{1}, secret.KeySize))
	// The receiver is on loopback, which webhooks reach only when listed.
	allow, err := events.ParseAllowListFlag("--webhook-allow", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	api0 := server.New(server.Options{Store: st, Keys: keys, Secrets: box, WebhookAllow: allow})
	srv := httptest.NewServer(api0.Handler())
	defer srv.Close()
	defer api0.CloseStreams()
	c, err := client.New(srv.URL, client.WithAPIKey("admin-key"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer rcv.Close()
	hook, err := c.CreateWebhook(ctx, api.NewWebhook{URL: rcv.URL, Events: []task.EventType{task.EventTaskCompleted}})
	if err != nil || hook.Secret == "" || hook.ID == "" {
		t.Fatalf("CreateWebhook: %+v %v", hook, err)
	}
	var ce *client.Error
	if _, err := c.CreateWebhook(ctx, api.NewWebhook{URL: "ftp://x/"}); !errors.As(err, &ce) || ce.Status != 400 || ce.Details["field"] != "url" {
		t.Fatalf("bad URL: %v", err)
	}
	if list, err := c.ListWebhooks(ctx); err != nil || len(list) != 1 || list[0].Secret != "" {
		t.Fatalf("ListWebhooks: %+v %v", list, err)
	}
	if got, err := c.GetWebhook(ctx, hook.ID); err != nil || got.URL != rcv.URL {
		t.Fatalf("GetWebhook: %+v %v", got, err)
	}
	if err := st.AddDelivery(ctx, store.Delivery{Org: "o", EventID: "e", EventType: task.EventTaskCompleted, Target: hook.ID, Attempt: 1,
		StatusCode: 200, Succeeded: true, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if page, err := c.ListDeliveries(ctx, hook.ID, client.DeliveryOptions{}); err != nil || len(page.Deliveries) != 1 || !page.Deliveries[0].Succeeded {
		t.Fatalf("ListDeliveries: %+v %v", page, err)
	}
	if s, err := c.SigningSecret(ctx); err != nil || s.Secret != box.SigningSecret("o") {
		t.Fatalf("SigningSecret: %+v %v", s, err)
	}
	if _, err := c.DeleteWebhook(ctx, hook.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetWebhook(ctx, hook.ID); !errors.As(err, &ce) || ce.Status != 404 {
		t.Fatalf("after delete: %v", err)
	}

	// Events: a page, then a stream from the next new one.
	add := func(n int) {
		at := time.Unix(int64(n), 0)
		ev, _ := events.New(events.TransitionID("task-c", int64(n)), task.EventTaskStep, store.Task{ID: "task-c", Org: "o", CreatedAt: at, UpdatedAt: at}, at)
		if _, err := st.AppendEvent(ctx, ev); err != nil {
			t.Error(err)
		}
	}
	add(1)
	add(2)
	page, err := c.ListEvents(ctx, client.EventOptions{Limit: 1})
	if err != nil || len(page.Events) != 1 || page.Events[0].ID != "evt-task-c-1" || page.Next == 0 {
		t.Fatalf("ListEvents: %+v %v", page, err)
	}
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var got []string
	done := errors.New("done")
	// Events 3 and 4 are added once the stream is open: its answer's
	// header has come, so it has fixed where it starts (the newest event,
	// 2).
	opened := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(opened) }) }
	fc, err := client.New(srv.URL, client.WithAPIKey("admin-key"), client.WithHTTPClient(&http.Client{Transport: onStreamOpen{http.DefaultTransport, open}}))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		select {
		case <-opened:
			add(3)
			add(4)
		case <-fctx.Done():
		}
	}()
	err = fc.FollowEvents(fctx, client.EventOptions{}, func(ev api.Event, cursor int64) error {
		got = append(got, ev.ID)
		if cursor <= page.Next || len(got) == 2 {
			return done
		}
		return nil
	})
	if !errors.Is(err, done) || len(got) != 2 || got[0] != "evt-task-c-3" || got[1] != "evt-task-c-4" {
		t.Fatalf("FollowEvents: %v %v", got, err)
	}
}

// onStreamOpen calls opened when the answer of an event stream comes.
type onStreamOpen struct {
	http.RoundTripper
	opened func()
}

func (o onStreamOpen) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := o.RoundTripper.RoundTrip(r)
	if err == nil && resp.Header.Get("Content-Type") == "text/event-stream" {
		o.opened()
	}
	return resp, err
}
