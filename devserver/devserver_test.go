package devserver

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/terratask/terratask/internal/temporalutil"
)

const (
	taskQueue    = "devserver-test"
	statusAttr   = "TerrataskStatus"
	finishSignal = "finish"
)

func echoWorkflow(_ workflow.Context, in string) (string, error) {
	return "echo:" + in, nil
}

// statusWorkflow publishes status as a search attribute, then waits for the
// finish signal.
func statusWorkflow(ctx workflow.Context, status string) (string, error) {
	key := temporal.NewSearchAttributeKeyKeyword(statusAttr)
	if err := workflow.UpsertTypedSearchAttributes(ctx, key.ValueSet(status)); err != nil {
		return "", err
	}
	var msg string
	workflow.GetSignalChannel(ctx, finishSignal).Receive(ctx, &msg)
	return "finished:" + msg, nil
}

func newClient(t *testing.T, srv *Server, logger *zap.Logger) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort:  srv.FrontendAddress(),
		Namespace: srv.Namespace(),
		Logger:    newSDKLogger(logger),
	})
	if err != nil {
		t.Fatalf("dial %s: %v", srv.FrontendAddress(), err)
	}
	return c
}

func startWorker(t *testing.T, c client.Client) worker.Worker {
	t.Helper()
	w := worker.New(c, taskQueue, worker.Options{})
	w.RegisterWorkflow(echoWorkflow)
	w.RegisterWorkflow(statusWorkflow)
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	return w
}

// waitForList polls a visibility query until it returns wantID or the
// deadline passes; visibility is eventually consistent.
func waitForList(ctx context.Context, t *testing.T, c client.Client, query, wantID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var last string
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err == nil {
			var ids []string
			for _, e := range resp.GetExecutions() {
				ids = append(ids, e.GetExecution().GetWorkflowId())
				if e.GetExecution().GetWorkflowId() == wantID {
					return
				}
			}
			last = "got " + strings.Join(ids, ",")
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("query %q never returned %s (%s)", query, wantID, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %.300s", url, resp.Status, b)
	}
	return string(b)
}

func TestStartRunRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logger := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	dbFile := filepath.Join(t.TempDir(), "state", "dev.db")
	opts := Options{
		DBFile:           dbFile,
		FrontendAddress:  "127.0.0.1:0",
		UIAddress:        "127.0.0.1:0",
		Namespace:        "terratask-test",
		SearchAttributes: []string{statusAttr, "TerrataskTaskID"},
		Logger:           logger,
	}

	// --- First start, on a new file.
	t0 := time.Now()
	srv, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start (new file): %v", err)
	}
	t.Logf("Start on a new file took %v; frontend %s, UI %s", time.Since(t0).Round(time.Millisecond), srv.FrontendAddress(), srv.UIURL())
	stopped := false
	defer func() {
		if !stopped {
			_ = srv.Stop()
		}
	}()

	// A second server on the same file is refused.
	if s2, err := Start(ctx, opts); !errors.Is(err, ErrDBInUse) {
		if s2 != nil {
			_ = s2.Stop()
		}
		t.Fatalf("second Start on the same file: got %v, want ErrDBInUse", err)
	}

	c := newClient(t, srv, logger)
	w := startWorker(t, c)

	// Search attributes are registered as Keyword.
	sa, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: srv.Namespace()})
	if err != nil {
		t.Fatalf("ListSearchAttributes: %v", err)
	}
	for _, name := range opts.SearchAttributes {
		if got := sa.GetCustomAttributes()[name]; got != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			t.Errorf("search attribute %s: type %v, want Keyword", name, got)
		}
	}

	// The temporalutil helpers are idempotent and tolerate concurrent callers.
	if err := temporalutil.EnsureNamespace(ctx, c, srv.Namespace(), 0); err != nil {
		t.Errorf("EnsureNamespace on an existing namespace: %v", err)
	}
	extra := []string{"TerrataskExtraA", "TerrataskExtraB", statusAttr}
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- temporalutil.EnsureSearchAttributes(ctx, c, srv.Namespace(), extra) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent EnsureSearchAttributes: %v", err)
		}
	}
	sa, err = c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: srv.Namespace()})
	if err != nil {
		t.Fatalf("ListSearchAttributes: %v", err)
	}
	if got := len(sa.GetCustomAttributes()); got != 4 {
		t.Errorf("after concurrent registration: %d custom attributes %v, want 4", got, sa.GetCustomAttributes())
	}
	if err := temporalutil.WaitForSearchAttributes(ctx, c, srv.Namespace(), extra); err != nil {
		t.Errorf("WaitForSearchAttributes: %v", err)
	}

	// A trivial workflow runs to completion.
	echoRun, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "echo-1", TaskQueue: taskQueue}, echoWorkflow, "hi")
	if err != nil {
		t.Fatalf("start echo: %v", err)
	}
	var out string
	if err := echoRun.Get(ctx, &out); err != nil || out != "echo:hi" {
		t.Fatalf("echo result %q, %v", out, err)
	}

	// A workflow upserts the search attribute, is found by it, and is left
	// waiting for a signal across the restart.
	waitRun, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "status-1", TaskQueue: taskQueue}, statusWorkflow, "x")
	if err != nil {
		t.Fatalf("start status workflow: %v", err)
	}
	waitForList(ctx, t, c, statusAttr+" = 'x'", "status-1")

	// The UI serves its page and proxies the API.
	getBody(t, srv.UIURL()+"/")
	if body := getBody(t, srv.UIURL()+"/api/v1/namespaces"); !strings.Contains(body, srv.Namespace()) {
		t.Errorf("/api/v1/namespaces does not list %s: %.300s", srv.Namespace(), body)
	}

	w.Stop()
	c.Close()
	t0 = time.Now()
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	t.Logf("Stop took %v", time.Since(t0).Round(time.Millisecond))
	if err := srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	// The file is released: another connection can take the write lock.
	assertWritable(t, dbFile)

	// --- Second start, on the existing file.
	t0 = time.Now()
	srv, err = Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start (existing file): %v", err)
	}
	stopped = false
	t.Logf("Start on an existing file took %v", time.Since(t0).Round(time.Millisecond))

	c = newClient(t, srv, logger)
	defer c.Close()

	// The completed workflow is still there, with its history.
	desc, err := c.DescribeWorkflowExecution(ctx, "echo-1", echoRun.GetRunID())
	if err != nil {
		t.Fatalf("describe echo-1 after restart: %v", err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("echo-1 status after restart: %v", st)
	}
	if n := desc.GetWorkflowExecutionInfo().GetHistoryLength(); n < 5 {
		t.Errorf("echo-1 history length after restart: %d", n)
	}

	// The waiting workflow resumes: signal it and let a new worker finish it.
	w = startWorker(t, c)
	defer w.Stop()
	if err := c.SignalWorkflow(ctx, "status-1", waitRun.GetRunID(), finishSignal, "after-restart"); err != nil {
		t.Fatalf("signal after restart: %v", err)
	}
	if err := c.GetWorkflow(ctx, "status-1", waitRun.GetRunID()).Get(ctx, &out); err != nil || out != "finished:after-restart" {
		t.Fatalf("status-1 result %q, %v", out, err)
	}
	waitForList(ctx, t, c, statusAttr+" = 'x' AND ExecutionStatus = 'Completed'", "status-1")
}

// assertWritable checks that nothing holds a lock on the database by taking
// SQLite's write lock from a fresh connection.
func assertWritable(t *testing.T, path string) {
	t.Helper()
	// No file descriptor of this process points at the database any more
	// (Linux only), and SQLite removed its WAL files on the last close.
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, fd := range fds {
			target, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
			if strings.HasPrefix(target, path) && target != path+".lock" {
				t.Errorf("after Stop, fd %s still open on %s", fd.Name(), target)
			}
		}
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(path + suffix); err == nil {
			t.Errorf("after Stop, %s still exists", path+suffix)
		}
	}
	// The lock file can be taken again.
	l, err := lockFile(path + ".lock")
	if err != nil {
		t.Fatalf("lock file still held after Stop: %v", err)
	}
	_ = l.unlock()

	// Another connection can take SQLite's write lock.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout%3D0")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("database still locked after Stop: %v", err)
	}
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsValidation(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "x.db")
	many := make([]string, 11)
	for i := range many {
		many[i] = "Attr" + strconv.Itoa(i)
	}
	cases := map[string]Options{
		"no db file":        {},
		"db file is dir":    {DBFile: dir},
		"uri chars in path": {DBFile: filepath.Join(dir, "a?b.db")},
		"bad frontend":      {DBFile: db, FrontendAddress: "7233"},
		"hostname frontend": {DBFile: db, FrontendAddress: "example.com:7233"},
		"bad ui port":       {DBFile: db, UIAddress: "127.0.0.1:99999"},
		"system namespace":  {DBFile: db, Namespace: "temporal-system"},
		"bad attr":          {DBFile: db, SearchAttributes: []string{"has space"}},
		"dup attr":          {DBFile: db, SearchAttributes: []string{"A", "A"}},
		"too many attrs":    {DBFile: db, SearchAttributes: many},
	}
	for name, o := range cases {
		if _, err := Start(context.Background(), o); err == nil {
			t.Errorf("%s: Start succeeded, want a validation error", name)
		}
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("validation failures must not create the database (stat: %v)", err)
	}
}

// TestHelperProcess is run as a child process by TestRestartAfterKill: it
// starts a server on DEVSERVER_HELPER_DB, starts a workflow that waits for a
// signal, prints its run ID and waits to be killed.
func TestHelperProcess(t *testing.T) {
	dbFile := os.Getenv("DEVSERVER_HELPER_DB")
	if dbFile == "" {
		t.Skip("helper for TestRestartAfterKill")
	}
	ctx := context.Background()
	srv, err := Start(ctx, Options{DBFile: dbFile, FrontendAddress: "127.0.0.1:0", SearchAttributes: []string{statusAttr}})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	c := newClient(t, srv, zap.NewNop())
	w := startWorker(t, c)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "killed-1", TaskQueue: taskQueue}, statusWorkflow, "before-kill")
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	// Wait until the worker has run the first workflow task (the upsert).
	for {
		d, err := c.DescribeWorkflowExecution(ctx, "killed-1", run.GetRunID())
		if err == nil && d.GetWorkflowExecutionInfo().GetHistoryLength() >= 4 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.Stop()
	fmt.Println("READY", run.GetRunID())
	select {}
}

// TestRestartAfterKill kills a process running a server (no Stop, as after a
// crash) and starts a server on its database file: the lock is free again
// and the waiting workflow resumes.
func TestRestartAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dbFile := filepath.Join(t.TempDir(), "dev.db")

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "DEVSERVER_HELPER_DB="+dbFile)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	var runID string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
			runID = id
			break
		}
		if strings.HasPrefix(sc.Text(), "ERROR") {
			t.Fatalf("helper: %s", sc.Text())
		}
	}
	if runID == "" {
		t.Fatalf("helper exited without starting the workflow (%v)", sc.Err())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true

	logger := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	t0 := time.Now()
	srv, err := Start(ctx, Options{DBFile: dbFile, FrontendAddress: "127.0.0.1:0", SearchAttributes: []string{statusAttr}, Logger: logger})
	if err != nil {
		t.Fatalf("Start after kill: %v", err)
	}
	defer srv.Stop()
	t.Logf("Start after kill took %v", time.Since(t0).Round(time.Millisecond))
	c := newClient(t, srv, logger)
	defer c.Close()
	w := startWorker(t, c)
	defer w.Stop()
	if err := c.SignalWorkflow(ctx, "killed-1", runID, finishSignal, "after-kill"); err != nil {
		t.Fatalf("signal after kill: %v", err)
	}
	var out string
	if err := c.GetWorkflow(ctx, "killed-1", runID).Get(ctx, &out); err != nil || out != "finished:after-kill" {
		t.Fatalf("killed-1 result %q, %v", out, err)
	}
	waitForList(ctx, t, c, statusAttr+" = 'before-kill'", "killed-1")
}

// TestStartFailsCleanly checks failures after validation: nothing is left
// locked and the process is not killed.
func TestStartFailsCleanly(t *testing.T) {
	dir := t.TempDir()

	// Not a SQLite file.
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), Options{DBFile: junk, FrontendAddress: "127.0.0.1:0"}); err == nil {
		t.Fatal("Start on a non-SQLite file succeeded")
	} else {
		t.Logf("non-SQLite file: %v", err)
	}
	l, err := lockFile(junk + ".lock")
	if err != nil {
		t.Fatalf("lock not released after failed Start: %v", err)
	}
	_ = l.unlock()

	// Frontend port taken.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = Start(context.Background(), Options{DBFile: filepath.Join(dir, "dev.db"), FrontendAddress: taken.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "not available") {
		t.Fatalf("Start with a taken port: %v", err)
	}
}

// TestIdleFootprint reports memory and CPU of an idle server. It takes ~20s,
// so it only runs with DEVSERVER_MEASURE=1.
func TestIdleFootprint(t *testing.T) {
	if os.Getenv("DEVSERVER_MEASURE") == "" {
		t.Skip("set DEVSERVER_MEASURE=1 to measure")
	}
	srv, err := Start(context.Background(), Options{
		DBFile:           filepath.Join(t.TempDir(), "dev.db"),
		FrontendAddress:  "127.0.0.1:0",
		UIAddress:        "127.0.0.1:0",
		SearchAttributes: []string{statusAttr},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	time.Sleep(5 * time.Second)
	cpu0, t0 := cpuTime(t), time.Now()
	time.Sleep(15 * time.Second)
	cpu := cpuTime(t) - cpu0
	t.Logf("idle: VmRSS %s, CPU %.1f%% of one core", procStatus(t, "VmRSS"), 100*cpu.Seconds()/time.Since(t0).Seconds())
}

func procStatus(t *testing.T, field string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func cpuTime(t *testing.T) time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip("no /proc")
	}
	// Fields after the command name: utime and stime are fields 14 and 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ = 100
}

// TestVisibilityIndexes: a new database has the visibility indexes a dev
// server queries and none of the others; one made with all of them loses
// the others at the next start.
func TestVisibilityIndexes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "temporal.db")
	if _, err := ensureSchema(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	indexes := func() map[string]bool {
		db, err := sql.Open("sqlite", ourDSN(path))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'executions_visibility' AND sql IS NOT NULL`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[string]bool{}
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			got[n] = true
		}
		return got
	}
	got := indexes()
	for name := range keptVisibilityIndexes {
		if !got[name] {
			t.Errorf("index %s is missing", name)
		}
	}
	if len(got) != len(keptVisibilityIndexes) {
		t.Errorf("indexes %v, want only %d", got, len(keptVisibilityIndexes))
	}

	// A database made with every index (before this change).
	stmts, err := schemaStatements()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", ourDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		if droppedVisibilityIndex(s) != "" {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
	}
	db.Close()
	if n := len(indexes()); n <= len(keptVisibilityIndexes) {
		t.Fatalf("the old database has %d indexes", n)
	}
	if created, err := ensureSchema(context.Background(), path); err != nil || created {
		t.Fatalf("ensureSchema of an existing database: %v %v", created, err)
	}
	if got := indexes(); len(got) != len(keptVisibilityIndexes) {
		t.Fatalf("after a start: %d indexes, want %d", len(got), len(keptVisibilityIndexes))
	}
}
