package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/client"
	"github.com/terratask/terratask/task"
)

var fastRetry = client.WithRetry(client.Retry{Attempts: 4, Base: time.Millisecond, Max: 5 * time.Millisecond})

func newClient(t *testing.T, h http.Handler, opts ...client.Option) *client.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, append([]client.Option{client.WithAPIKey("secret"), fastRetry}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestErrorsAreTyped(t *testing.T) {
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "UserKey secret" {
			t.Errorf("Authorization %q", r.Header.Get("Authorization"))
		}
		w.Header().Set("X-Request-ID", "req-1")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"Task not found","details":{"taskId":"task-x"}}}`))
	}))
	_, err := c.GetTask(context.Background(), "task-x")
	var e *client.Error
	if !errors.As(err, &e) || !errors.Is(err, client.ErrNotFound) || errors.Is(err, client.ErrConflict) {
		t.Fatalf("err %v (%T)", err, err)
	}
	if e.Status != 404 || e.Code != "not_found" || e.Message != "Task not found" || e.Details["taskId"] != "task-x" || e.RequestID != "req-1" {
		t.Fatalf("%+v", e)
	}
}

// A body that is not the API's (a proxy's page) still becomes *Error with
// the status's code.
func TestErrorsWithoutTheAPIBody(t *testing.T) {
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("<html>denied</html>"))
	}))
	_, err := c.ListRunners(context.Background())
	if !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("err %v", err)
	}
}

// Reads are retried on 503 and on dropped connections; writes without an
// Idempotency-Key are sent once.
func TestRetries(t *testing.T) {
	var gets, cancels atomic.Int32
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			switch gets.Add(1) {
			case 1:
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"x","details":{}}}`))
				return
			case 2: // a dropped connection
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
				return
			}
			_, _ = w.Write([]byte(`{"id":"task-1","status":"running"}`))
		case http.MethodPut:
			cancels.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"Temporal is down","details":{}}}`))
		}
	}))
	st, err := c.GetStatus(context.Background(), "task-1")
	if err != nil || st.Status != "running" || gets.Load() != 3 {
		t.Fatalf("status %+v, err %v, after %d tries", st, err, gets.Load())
	}
	_, err = c.CancelTask(context.Background(), "task-1", client.CancelOptions{})
	if !errors.Is(err, client.ErrUnavailable) || cancels.Load() != 1 {
		t.Fatalf("cancel: err %v after %d tries", err, cancels.Load())
	}
	// A read gives up after Attempts.
	c2 := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	gets.Store(0)
	if _, err := c2.GetTask(context.Background(), "task-1"); !errors.Is(err, client.ErrUnavailable) || gets.Load() != 4 {
		t.Fatalf("err %v after %d tries", err, gets.Load())
	}
}

// A create whose answer is lost is retried with the same Idempotency-Key
// and the same bytes; a caller's key is sent as given.
func TestCreateRetrySendsTheSameKeyAndBody(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	var bodies [][]byte
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		bodies = append(bodies, b)
		n := len(keys)
		mu.Unlock()
		if n == 1 {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		_, _ = w.Write([]byte(`{"id":"task-1","status":"pending"}`))
	}))
	tk, err := c.CreateTask(context.Background(), api.CreateTask{Name: "n", AgentID: "a", RunnerID: "r", Parameters: map[string]any{"x": 1}})
	if err != nil || tk.ID != "task-1" {
		t.Fatalf("%+v %v", tk, err)
	}
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] || !bytes.Equal(bodies[0], bodies[1]) {
		t.Fatalf("keys %q, bodies %q", keys, bodies)
	}
	keys = nil
	if _, err := c.CreateTask(context.Background(), api.CreateTask{Name: "n"}, client.IdempotencyKey("mine")); err != nil {
		t.Fatal(err)
	}
	if keys[len(keys)-1] != "mine" {
		t.Fatalf("keys %q", keys)
	}
}

func TestListPaging(t *testing.T) {
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.RawQuery; q != "limit=2&order=asc&page=2&sort=status&status=running%2Cfailed" {
			t.Errorf("query %s", q)
		}
		w.Header().Set("X-Total-Count", "7")
		w.Header().Set("Link", `</api/v1/tasks?limit=2&page=3>; rel="next", </api/v1/tasks?limit=2&page=1>; rel="prev"`)
		_, _ = w.Write([]byte(`[{"id":"task-1"},{"id":"task-2"}]`))
	}))
	p, err := c.ListTasks(context.Background(), client.ListOptions{Status: []task.Status{"running", "failed"}, Limit: 2, Page: 2, Sort: "status", Order: "asc"})
	if err != nil || len(p.Tasks) != 2 || p.Total != 7 || p.Next != 3 || p.Prev != 1 {
		t.Fatalf("%+v %v", p, err)
	}
}

// HandlerTransport serves requests in process and streams the answer: the
// first part of the body arrives while the handler still writes.
func TestHandlerTransport(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" || r.URL.Path != "/api/v1/runners/a%2Fb" && r.URL.Path != "/api/v1/runners/a/b" {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"id":"a/b",`))
		w.(http.Flusher).Flush()
		<-release
		_, _ = w.Write([]byte(`"status":"online"}`))
	})
	// The raw answer: its first part is read before the handler may go on.
	req, _ := http.NewRequest(http.MethodGet, "http://in-process/api/v1/runners/a%2Fb", nil)
	req.Header.Set("Authorization", "Bearer k")
	first := make(chan string, 1)
	var resp *http.Response
	go func() {
		var err error
		if resp, err = client.HandlerTransport(h).RoundTrip(req); err != nil {
			first <- err.Error()
			return
		}
		b := make([]byte, len(`{"id":"a/b",`))
		_, err = io.ReadFull(resp.Body, b)
		first <- string(b) + fmt.Sprint(err)
	}()
	select {
	case got := <-first:
		if got != `{"id":"a/b",<nil>` {
			t.Fatalf("first part: %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first part did not arrive while the handler waited: the answer is not streamed")
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != `"status":"online"}` || resp.StatusCode != 200 {
		t.Fatalf("rest: %d %q %v", resp.StatusCode, rest, err)
	}
	// Through the client, which decodes it.
	c, err := client.New("http://in-process", client.WithAuthorization("Bearer k"),
		client.WithHTTPClient(&http.Client{Transport: client.HandlerTransport(h)}))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.GetRunner(context.Background(), "a/b")
	if err != nil || r.ID != "a/b" || r.Status != "online" {
		t.Fatalf("%+v %v", r, err)
	}
}
