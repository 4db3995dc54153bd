package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/internal/pgtest"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/sqlite"
	"github.com/terratask/terratask/store/storetest"
	"github.com/terratask/terratask/task"
)

const (
	bigOrg = "big"
	bigKey = "k-big"
)

// bigN is 100,000 tasks, or 20,000 under the race detector (which slows
// seeding and paging tenfold): the order and exactly-once claims hold at
// any size; the benchmarks measure the full size without it.
var bigN = map[bool]int{false: 100_000, true: 20_000}[raceEnabled]

// big is one SQLite store holding bigN tasks, seeded once per test binary
// and shared by the 100k test and the benchmarks.
var big struct {
	once  sync.Once
	dir   string
	st    *sqlite.Store
	tasks []store.Task
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop() // the PostgreSQL cluster of the replica tests, if one started
	if big.st != nil {
		big.st.Close()
	}
	if big.dir != "" {
		os.RemoveAll(big.dir)
	}
	os.Exit(code)
}

// bigServer returns a server over the 100k store. Lists and gets never need
// Temporal, so it has none.
func bigServer(tb testing.TB) (*Server, []store.Task) {
	tb.Helper()
	big.once.Do(func() {
		start := time.Now()
		if big.dir, big.err = os.MkdirTemp("", "terratask-server-100k"); big.err != nil {
			return
		}
		if big.st, big.err = sqlite.Open(tb.Context(), filepath.Join(big.dir, "store.db")); big.err != nil {
			return
		}
		big.tasks = storetest.GenTasks(bigOrg, bigN, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		for i := 0; i < len(big.tasks) && big.err == nil; i += 25_000 {
			big.err = big.st.CreateTasks(tb.Context(), big.tasks[i:min(i+25_000, len(big.tasks))])
		}
		tb.Logf("seeded %d tasks in %s", bigN, time.Since(start).Round(time.Millisecond))
	})
	if big.err != nil {
		tb.Fatal(big.err)
	}
	keys, err := auth.NewKeyring([]auth.Key{
		{Name: "big-admin", Org: bigOrg, Role: auth.RoleViewer, Hash: auth.HashKey(bigKey)},
		{Name: "big-agent", Org: bigOrg, Role: auth.RoleViewer, Agent: "agent-3", Hash: auth.HashKey("k-big-agent")},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return New(Options{Store: big.st, Keys: keys}), big.tasks
}

var nextLink = regexp.MustCompile(`<([^>]+)>; rel="next"`)

// pageThrough follows the Link header's next pages from path and returns
// the IDs in order, checking X-Total-Count on every page.
func pageThrough(t *testing.T, h http.Handler, key, path string, wantTotal int) []string {
	t.Helper()
	var ids []string
	for pages := 0; path != ""; pages++ {
		if pages > bigN {
			t.Fatal("paging does not end")
		}
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("Authorization", "UserKey "+key)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		if total, _ := strconv.Atoi(w.Header().Get("X-Total-Count")); total != wantTotal {
			t.Fatalf("%s: X-Total-Count %s, want %d", path, w.Header().Get("X-Total-Count"), wantTotal)
		}
		var page []struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		for _, p := range page {
			ids = append(ids, p.ID)
		}
		path = ""
		if m := nextLink.FindStringSubmatch(w.Header().Get("Link")); m != nil {
			path = m[1]
		}
	}
	return ids
}

// TestListPaging100k pages through 100,000 tasks over HTTP, by the Link
// header, for every sort and order and for filters: every task exactly once,
// in the store's documented order (sort key, then ID).
func TestListPaging100k(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds and pages through 100,000 tasks (skipped with -short)")
	}
	s, tasks := bigServer(t)
	h := s.Handler()
	type listCase struct {
		key, path string
		q         store.TaskQuery
	}
	var cases []listCase
	for _, sort := range []store.SortField{store.SortCreatedAt, store.SortUpdatedAt, store.SortStatus} {
		for _, order := range []string{"asc", "desc"} {
			cases = append(cases, listCase{bigKey, fmt.Sprintf("/api/v1/tasks?sort=%s&order=%s&limit=1000", sort, order),
				store.TaskQuery{Sort: sort, Descending: order == "desc"}})
		}
	}
	cases = append(cases,
		listCase{bigKey, "/api/v1/tasks?status=running,failed&runner=runner-1&limit=500",
			store.TaskQuery{Sort: store.SortCreatedAt, Descending: true, Status: []task.Status{task.StatusRunning, task.StatusFailed}, RunnerID: "runner-1"}},
		listCase{bigKey, "/api/v1/tasks/agent/agent-3?sort=updated_at&order=asc&limit=1000",
			store.TaskQuery{Sort: store.SortUpdatedAt, AgentID: "agent-3"}},
		listCase{bigKey, "/api/v1/tasks/runner/runner-2?sort=status&limit=1000",
			store.TaskQuery{Sort: store.SortStatus, Descending: true, RunnerID: "runner-2"}},
		// An agent-bound key sees its agent's tasks only.
		listCase{"k-big-agent", "/api/v1/tasks?limit=1000",
			store.TaskQuery{Sort: store.SortCreatedAt, Descending: true, AgentID: "agent-3"}},
	)
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			c.q.Org = bigOrg
			want := storetest.Expect(tasks, c.q)
			got := pageThrough(t, h, c.key, c.path, len(want))
			seen := make(map[string]bool, len(got))
			for i, id := range got {
				if seen[id] {
					t.Fatalf("%s listed twice", id)
				}
				seen[id] = true
				if i < len(want) && id != want[i] {
					t.Fatalf("position %d is %s, want %s", i, id, want[i])
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d tasks over the pages, want %d", len(got), len(want))
			}
			t.Logf("%d tasks in %s", len(got), time.Since(start).Round(time.Millisecond))
		})
	}
}

// benchGet serves one GET through the router.
func benchGet(b *testing.B, h http.Handler, paths []string) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r := httptest.NewRequest("GET", paths[i%len(paths)], nil)
		r.Header.Set("Authorization", "UserKey "+bigKey)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkListPage100k lists a page of 50 (the default) from 100,000 tasks
// through the router: the first page, a page 50,000 deep, and a filtered page.
func BenchmarkListPage100k(b *testing.B) {
	s, _ := bigServer(b)
	h := s.Handler()
	for _, c := range []struct{ name, path string }{
		{"first", "/api/v1/tasks"},
		{"deep", "/api/v1/tasks?page=1000"},
		{"filtered", "/api/v1/tasks?status=running&agent=agent-3&sort=updated_at"},
		{"agent", "/api/v1/tasks/agent/agent-3"},
	} {
		b.Run(c.name, func(b *testing.B) { benchGet(b, h, []string{c.path}) })
	}
}

// BenchmarkGetTask reads single tasks of the 100,000 through the router.
func BenchmarkGetTask(b *testing.B) {
	s, tasks := bigServer(b)
	paths := make([]string, 0, 1024)
	for i := 0; i < len(tasks); i += len(tasks) / 1024 {
		paths = append(paths, "/api/v1/tasks/"+tasks[i].ID)
	}
	benchGet(b, s.Handler(), paths)
}
