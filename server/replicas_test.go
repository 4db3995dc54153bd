package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/internal/pgtest"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/postgres"
	"github.com/terratask/terratask/task"
)

// pgReplicas returns two servers on one PostgreSQL store, each with its own
// store connection and hub (two replicas on two hosts), and the URL of the
// second.
func pgReplicas(tb testing.TB, running ...string) (a, b *Server, stA, stB store.Store, urlB string) {
	tb.Helper()
	dsn := pgtest.NewDatabase(tb)
	open := func() store.Store {
		st, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { st.Close() })
		return st
	}
	stA, stB = open(), open()
	fake := newFakeTemporal() // the workflows of running are open
	for _, id := range running {
		fake.started[id] = client.StartWorkflowOptions{}
	}
	mk := func(st store.Store) *Server {
		s := New(Options{Store: st, Keys: testKeyring(tb), Temporal: fake})
		tb.Cleanup(s.CloseStreams)
		return s
	}
	a, b = mk(stA), mk(stB)
	srv := httptest.NewServer(b.Handler())
	tb.Cleanup(srv.Close)
	return a, b, stA, stB, srv.URL
}

// TestFollowAcrossReplicasOnPostgres: a follower on replica B of a task
// whose lines and transitions are written through another connection
// (replica A's control plane, a runner on another host) sees every line
// once and the end: B learns of them by LISTEN/NOTIFY.
func TestFollowAcrossReplicasOnPostgres(t *testing.T) {
	_, _, stA, _, urlB := pgReplicas(t)
	w := newTaskWriter(t, stA, "task-replicas", "org-a")
	c := openSSE(t, t.Context(), urlB+"/api/v1/tasks/task-replicas/logs?follow=true", "k-viewer-a")
	done := make(chan struct{})
	go func() { defer close(done); w.story(10 * time.Millisecond) }()
	var got collected
	follow(t, c, &got, nil)
	<-done
	if want := allMessages(t, stA, "task-replicas"); strings.Join(got.logs, "|") != strings.Join(want, "|") {
		t.Fatalf("log events:\n%v\nwant\n%v", got.logs, want)
	}
	if fmt.Sprint(got.statuses) != fmt.Sprint(wantStatuses) {
		t.Fatalf("status events %v", got.statuses)
	}
}

// BenchmarkFollowLatencyAcrossReplicas measures the time from a line's
// commit through replica A's store connection to its log event on a
// follower of replica B (PostgreSQL LISTEN/NOTIFY), one line at a time.
func BenchmarkFollowLatencyAcrossReplicas(b *testing.B) {
	_, _, stA, _, urlB := pgReplicas(b, "task-lat")
	benchFollowLatency(b, stA, urlB)
}

// BenchmarkFollowLatencySQLite is the same on one SQLite store (terratask
// dev: the writer is in the follower's process).
func BenchmarkFollowLatencySQLite(b *testing.B) {
	ts := newTestServer(b, true)
	ts.fake.started["task-lat"] = client.StartWorkflowOptions{}
	srv := httptest.NewServer(ts.Handler())
	b.Cleanup(func() { ts.CloseStreams(); srv.Close() })
	benchFollowLatency(b, ts.store, srv.URL)
}

func benchFollowLatency(b *testing.B, st store.Store, url string) {
	ctx := context.Background()
	created := time.Now().UTC()
	row := store.Task{ID: "task-lat", Org: "org-a", Name: "n", Status: "running", CreatedAt: created, UpdatedAt: created}
	if err := st.CreateTask(ctx, row); err != nil {
		b.Fatal(err)
	}
	c := openSSE(b, ctx, url+"/api/v1/tasks/task-lat/logs?follow=true", "k-viewer-a")
	var lags []time.Duration
	b.ResetTimer()
	for i := range b.N {
		sent := time.Now()
		if err := st.AppendLogs(ctx, []store.LogEntry{{TaskID: "task-lat", Stream: "bench", Seq: int64(i + 1), Timestamp: sent,
			Level: task.LevelInfo, Message: fmt.Sprint(i)}}); err != nil {
			b.Fatal(err)
		}
		ev, err := c.Next()
		if err != nil {
			b.Fatal(err)
		}
		var e api.LogEntry
		if err := json.Unmarshal(ev.Data, &e); err != nil || ev.Name != "log" || e.Message != fmt.Sprint(i) {
			b.Fatalf("event %s %s: %v", ev.Name, ev.Data, err)
		}
		lags = append(lags, time.Since(sent))
	}
	b.StopTimer()
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "p99-ms")
}
