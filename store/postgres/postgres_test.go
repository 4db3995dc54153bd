package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/terratask/terratask/internal/pgtest"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/storetest"
	"github.com/terratask/terratask/task"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openDSN opens a store on dsn and closes it when tb ends.
func openDSN(tb testing.TB, dsn string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// openTest opens a store on a fresh database.
func openTest(tb testing.TB) *Store {
	tb.Helper()
	return openDSN(tb, pgtest.NewDatabase(tb))
}

// connect returns a plain connection to dsn, closed when tb ends.
func connect(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestStore(t *testing.T) {
	// One database for the whole suite (it namespaces its data), a store of
	// its own for every subtest: each Open finds the schema migrated.
	dsn := pgtest.NewDatabase(t)
	check := connect(t, dsn)
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openDSN(t, dsn)
		t.Cleanup(func() { checkCounts(t, check) }) // runs before Close
		return s
	})
}

func TestLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100,000 tasks; skipped with -short")
	}
	storetest.RunLarge(t, func(t *testing.T) store.Store { return openTest(t) }, 100_000)
}

// TestUnstorableText checks strings PostgreSQL text cannot hold (NUL, invalid
// UTF-8) are stored with U+FFFD in their place rather than failing the call.
func TestUnstorableText(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	tk := store.Task{ID: "bad\x00id\xff", Org: "o", Name: "n\x00ame", Metadata: map[string]any{"k": "v\x00"},
		CreatedAt: time.Unix(0, 0)}
	if err := s.CreateTask(ctx, tk); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetTask(ctx, "o", tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "bad\uFFFDid\uFFFD" || got.Name != "n\uFFFDame" || got.Metadata["k"] != "v\x00" {
		t.Errorf("stored task %q name %q metadata %q", got.ID, got.Name, got.Metadata)
	}
	if err := s.ApplyTransition(ctx, store.Transition{ID: tk.ID, Status: task.StatusRunning, UpdatedAt: time.Unix(1, 0)}); err != nil {
		t.Error(err)
	}
	if err := s.AppendLogs(ctx, []store.LogEntry{{TaskID: tk.ID, Stream: "s", Seq: 1, Level: task.LevelInfo,
		Message: "line\x00with\xc3nul"}}); err != nil {
		t.Fatal(err)
	}
	logs, err := s.ListLogs(ctx, store.LogQuery{TaskID: tk.ID, Limit: 10})
	if err != nil || len(logs) != 1 || logs[0].Message != "line\uFFFDwith\uFFFDnul" {
		t.Errorf("logs %+v, error %v", logs, err)
	}
}

func TestContextCancelled(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.CreateTask(ctx, store.Task{ID: "x", Org: "o"}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateTask with a cancelled context: %v", err)
	}
	if _, _, err := s.ListTasks(ctx, store.TaskQuery{Org: "o", Limit: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("ListTasks with a cancelled context: %v", err)
	}
	if err := s.AppendLogs(ctx, storetest.GenLogs("x", "s", 1, 3, time.Unix(0, 0))); !errors.Is(err, context.Canceled) {
		t.Errorf("AppendLogs with a cancelled context: %v", err)
	}
	// The store still works afterwards.
	if err := s.CreateTask(t.Context(), store.Task{ID: "x", Org: "o"}); err != nil {
		t.Error(err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, dsn := range []string{"not a dsn ://", "postgres://nobody@127.0.0.1:1/x?connect_timeout=2"} {
		if s, err := Open(ctx, dsn); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", dsn)
		}
	}
	if err := Migrate(ctx, "postgres://nobody@127.0.0.1:1/x?connect_timeout=2"); err == nil {
		t.Error("Migrate of an unreachable server succeeded")
	}
}

// BenchmarkStore runs the shared benchmarks, each on a fresh database. Their
// names follow storetest.RunBenchmarks: BenchmarkStore/ListTasksPage100k/...
// pairs with the SQLite store's BenchmarkListTasksPage100k/...
func BenchmarkStore(b *testing.B) {
	storetest.RunBenchmarks(b, func(b *testing.B) store.Store { return openTest(b) })
}

// TestListenAcrossProcesses: a second Store on the same database (another
// replica) is told about what the first writes, by LISTEN/NOTIFY.
func TestListenAcrossProcesses(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	storetest.RunListenAcross(t, func(t *testing.T) (store.Store, store.Store) {
		return openDSN(t, dsn), openDSN(t, dsn)
	})
}
