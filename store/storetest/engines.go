package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

func (h *harness) testRunnerHosts(t *testing.T) {
	s := h.open(t)
	ctx := t.Context()
	org, runner, other := h.name("org"), h.name("runner"), h.name("runner")
	engines := []task.EngineInfo{
		{Engine: task.EngineTerraform, Versions: []string{"1.11.4", "1.9.8"}, Download: true},
		{Engine: task.EngineOpenTofu, Versions: []string{"1.6.3"}},
	}
	a := store.RunnerHost{Org: org, RunnerID: runner, HostID: "host-b", Identity: runner + "@host-b/pid-1", Engines: engines,
		StartedAt: baseTime, UpdatedAt: baseTime.Add(time.Minute)}
	b := store.RunnerHost{Org: org, RunnerID: runner, HostID: "host-a", Identity: runner + "@host-a/pid-9",
		StartedAt: baseTime, UpdatedAt: baseTime.Add(time.Minute)}
	for _, hst := range []store.RunnerHost{a, b, {Org: org, RunnerID: other, HostID: "host-a", StartedAt: baseTime, UpdatedAt: baseTime}} {
		if err := s.PutRunnerHost(ctx, hst); err != nil {
			t.Fatal(err)
		}
	}
	// A refresh replaces the row.
	a.Engines = engines[:1]
	a.UpdatedAt = baseTime.Add(2 * time.Minute)
	if err := s.PutRunnerHost(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.RunnerHosts(ctx, org, runner)
	if err != nil {
		t.Fatal(err)
	}
	b.Engines = []task.EngineInfo{}
	want := []store.RunnerHost{b, a}
	if len(got) != 2 {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		w := want[i]
		w.StartedAt, w.UpdatedAt = us(w.StartedAt), us(w.UpdatedAt)
		if !reflect.DeepEqual(got[i], w) || got[i].UpdatedAt.Location() != time.UTC {
			t.Errorf("host %d: got %+v, want %+v", i, got[i], w)
		}
	}
	// A host silent for longer than the TTL goes with the next write of
	// its runner.
	late := a
	late.HostID = "host-c"
	late.UpdatedAt = b.UpdatedAt.Add(store.RunnerHostTTL + time.Hour)
	if err := s.PutRunnerHost(ctx, late); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.RunnerHosts(ctx, org, runner); len(got) != 1 || got[0].HostID != "host-c" {
		t.Fatalf("after the TTL: %+v", got)
	}
	if got, _ := s.RunnerHosts(ctx, org, other); len(got) != 1 {
		t.Fatalf("another runner's rows were pruned: %+v", got)
	}
	if none, err := s.RunnerHosts(ctx, org, h.name("runner")); err != nil || len(none) != 0 {
		t.Fatalf("unknown runner: %v %v", none, err)
	}
	if err := s.PutRunnerHost(ctx, store.RunnerHost{Org: org, RunnerID: runner}); err == nil {
		t.Fatal("a host without ID was stored")
	}
}

func (h *harness) testSchedulesCRUD(t *testing.T) {
	s := h.open(t)
	ctx := t.Context()
	org := h.name("org")
	sc := store.Schedule{ID: h.name("sched"), Org: org, Name: "nightly drift ✓", Kind: "drift", AgentID: "agent-1",
		RunnerID: "runner-1", Definition: json.RawMessage(`{"cron":"0 2 * * *","template":{"name":"x"}}`),
		CreatedBy: "ops", CreatedAt: baseTime}
	if err := s.CreateSchedule(ctx, sc); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSchedule(ctx, sc); err == nil {
		t.Fatal("a second schedule of one ID was stored")
	}
	got, err := s.GetSchedule(ctx, org, sc.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := sc
	want.CreatedAt, want.UpdatedAt = us(sc.CreatedAt), us(sc.CreatedAt)
	checkSchedule(t, got, want)
	if _, err := s.GetSchedule(ctx, h.name("org"), sc.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another org's schedule: %v", err)
	}

	up := sc
	up.Name, up.Kind, up.AgentID, up.RunnerID = "renamed", "task", "agent-2", "runner-2"
	up.Definition = json.RawMessage(`{"interval":"1h"}`)
	up.UpdatedAt = baseTime.Add(time.Hour)
	up.CreatedBy = "someone else" // not updated
	if err := s.UpdateSchedule(ctx, up); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetSchedule(ctx, org, sc.ID)
	want = up
	want.CreatedBy, want.CreatedAt, want.UpdatedAt = sc.CreatedBy, us(sc.CreatedAt), us(up.UpdatedAt)
	checkSchedule(t, got, want)

	wrongOrg := up
	wrongOrg.Org = h.name("org")
	if err := s.UpdateSchedule(ctx, wrongOrg); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update in another org: %v", err)
	}
	if err := s.DeleteSchedule(ctx, wrongOrg.Org, sc.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete in another org: %v", err)
	}
	if err := s.DeleteSchedule(ctx, org, sc.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSchedule(ctx, org, sc.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted schedule: %v", err)
	}
	if err := s.DeleteSchedule(ctx, org, sc.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	bad := sc
	bad.ID, bad.Definition = h.name("sched"), json.RawMessage(`{`)
	if err := s.CreateSchedule(ctx, bad); err == nil {
		t.Fatal("a definition that is not JSON was stored")
	}
}

func checkSchedule(t *testing.T, got, want store.Schedule) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got.Definition, &g); err != nil {
		t.Fatalf("definition %s: %v", got.Definition, err)
	}
	_ = json.Unmarshal(want.Definition, &w)
	got.Definition, want.Definition = nil, nil
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(g, w) || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("got %+v %v, want %+v %v", got, g, want, w)
	}
}

func (h *harness) testSchedulesList(t *testing.T) {
	s := h.open(t)
	ctx := t.Context()
	org, other := h.name("org"), h.name("org")
	var all []store.Schedule
	for i := range 7 {
		sc := store.Schedule{ID: fmt.Sprintf("%s-s%d", org, i), Org: org, Name: fmt.Sprint("s", i),
			Kind: []string{"task", "drift"}[i%2], AgentID: []string{"a", "b", "c"}[i%3], RunnerID: "r",
			Definition: json.RawMessage(`{}`), CreatedAt: baseTime.Add(time.Duration(i/2) * time.Second)}
		if err := s.CreateSchedule(ctx, sc); err != nil {
			t.Fatal(err)
		}
		all = append(all, sc)
	}
	if err := s.CreateSchedule(ctx, store.Schedule{ID: h.name("sched"), Org: other, Name: "x", Kind: "task",
		Definition: json.RawMessage(`{}`), CreatedAt: baseTime}); err != nil {
		t.Fatal(err)
	}
	ids := func(ss []store.Schedule) []string {
		out := []string{}
		for _, sc := range ss {
			out = append(out, sc.ID)
		}
		return out
	}
	// Newest first, ties by ID descending.
	want := []string{all[6].ID, all[5].ID, all[4].ID, all[3].ID, all[2].ID, all[1].ID, all[0].ID}
	var got []string
	for off := 0; off < 10; off += 3 {
		page, total, err := s.ListSchedules(ctx, store.ScheduleQuery{Org: org, Limit: 3, Offset: off})
		if err != nil || total != 7 {
			t.Fatalf("offset %d: total %d, %v", off, total, err)
		}
		got = append(got, ids(page)...)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pages %v, want %v", got, want)
	}
	page, total, err := s.ListSchedules(ctx, store.ScheduleQuery{Org: org, AgentID: "a", Kind: "task", Limit: 10})
	if err != nil || total != 2 || !reflect.DeepEqual(ids(page), []string{all[6].ID, all[0].ID}) {
		t.Fatalf("agent a, kind task: %v %d %v", ids(page), total, err)
	}
	if _, _, err := s.ListSchedules(ctx, store.ScheduleQuery{Org: org}); err == nil {
		t.Fatal("limit 0 was accepted")
	}
}

func (h *harness) testTasksOfSchedule(t *testing.T) {
	s := h.open(t)
	ctx := t.Context()
	org := h.name("org")
	sched := h.name("sched")
	tasks := GenTasks(org, 40, baseTime)
	var mine []string
	for i := range tasks {
		if i%3 == 0 {
			tasks[i].ScheduleID = sched
		} else if i%3 == 1 {
			tasks[i].ScheduleID = sched + "-other"
		}
	}
	SeedTasks(t, s, tasks)
	page, total, err := s.ListTasks(ctx, store.TaskQuery{Org: org, ScheduleID: sched, Sort: store.SortCreatedAt, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		if tk.ScheduleID == sched {
			mine = append(mine, tk.ID)
		}
	}
	if total != len(mine) || len(page) != 5 {
		t.Fatalf("total %d (want %d), page of %d", total, len(mine), len(page))
	}
	for _, tk := range page {
		if tk.ScheduleID != sched {
			t.Fatalf("listed %s of schedule %q", tk.ID, tk.ScheduleID)
		}
	}
	// With a status filter too.
	st := tasks[0].Status
	want := 0
	for _, tk := range tasks {
		if tk.ScheduleID == sched && tk.Status == st {
			want++
		}
	}
	if _, n, err := s.ListTasks(ctx, store.TaskQuery{Org: org, ScheduleID: sched, Status: []task.Status{st}, Limit: 1}); err != nil || n != want {
		t.Fatalf("status %s: %d, want %d (%v)", st, n, want, err)
	}
	if _, n, err := s.ListTasks(ctx, store.TaskQuery{Org: h.name("org"), ScheduleID: sched, Limit: 1}); err != nil || n != 0 {
		t.Fatalf("another org: %d %v", n, err)
	}
}
