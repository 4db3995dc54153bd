package activities

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

func testBook(t *testing.T, sink LogSink, dir, stream string) *logBook {
	t.Helper()
	return newLogBook(sink, "task-book", stream, dir, secret.NewMasker(task.Secrets{}),
		map[string]any{"step": "applying", "attempt": 1, "run": 1}, zaptest.NewLogger(t))
}

// crash drops a book as a SIGKILL would: nothing flushed, the spool left.
func crash(b *logBook) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.spool.Close()
	b.spool = nil
}

func messagesOf(es []store.LogEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Message)
	}
	return out
}

// TestTornSpoolTailLosesNoLaterLine: a crash cut the spool's last line; the
// same stream opened again must not glue its next entry onto the torn one.
func TestTornSpoolTailLosesNoLaterLine(t *testing.T) {
	dir, sink := t.TempDir(), newMemSink()
	const stream = "run1/applying/attempt1"
	b := testBook(t, sink, dir, stream)
	b.runner(task.LevelInfo, "one")
	b.runner(task.LevelInfo, "two")
	crash(b)
	fn := filepath.Join(dir, spoolName(stream))
	f, err := os.OpenFile(fn, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"TaskID":"task-book","Stream":"` + stream + `","Seq":3,"Mess`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	b = testBook(t, sink, dir, stream)
	b.runner(task.LevelInfo, "four")
	crash(b)
	if _, err := recoverSpools(context.Background(), sink, dir, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(messagesOf(sink.all("task-book")), ","); got != "one,two,four" {
		t.Fatalf("recovered %q, want one,two,four", got)
	}
}

// TestLongSpoolLinesAreRecovered: only a message is capped, not its
// metadata; a line longer than any buffer must not hide the lines after it.
func TestLongSpoolLinesAreRecovered(t *testing.T) {
	dir, sink := t.TempDir(), newMemSink()
	b := testBook(t, sink, dir, "run1/applying/attempt1")
	b.add(task.LevelError, componentTerraform, "Error: huge diff", time.Now(),
		map[string]string{"type": "diagnostic", "detail": strings.Repeat("\x1b[0m", 200_000)})
	b.runner(task.LevelInfo, "after the long one")
	crash(b)

	n, err := recoverSpools(context.Background(), sink, dir, nil)
	if err != nil || n != 2 {
		t.Fatalf("recovered %d entries (%v), want 2", n, err)
	}
	if got := messagesOf(sink.all("task-book")); len(got) != 2 || got[1] != "after the long one" {
		t.Fatalf("recovered %q", got)
	}
}

// TestReopenedStreamNeverReusesASeq: a mark left without its spool (a crash
// while removing them) says seqs up to it are stored; a new entry reusing
// one would be dropped by the sink as a duplicate, i.e. lost.
func TestReopenedStreamNeverReusesASeq(t *testing.T) {
	dir, sink := t.TempDir(), newMemSink()
	const stream = "run1/applying/attempt1"
	b := testBook(t, sink, dir, stream)
	for i := 1; i <= 3; i++ {
		b.runner(task.LevelInfo, "line %d", i)
	}
	if err := b.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	crash(b)
	if err := os.Remove(filepath.Join(dir, spoolName(stream))); err != nil {
		t.Fatal(err)
	}

	b = testBook(t, sink, dir, stream)
	b.runner(task.LevelInfo, "line 4")
	if err := b.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(messagesOf(sink.all("task-book")), ","); got != "line 1,line 2,line 3,line 4" {
		t.Fatalf("stored %q: a seq was reused", got)
	}
}

// TestRepeatedTerraformLinesKeepTheirOwnSeq: an interrupted apply ends with
// one "Error: execution halted" per halted node, microseconds apart, which
// read the same at the API's millisecond precision (the "doubled" line
// e2e/restart_test.go once saw). Each is its own entry, and its metadata
// carries its seq, so a reader tells it from a line stored twice.
func TestRepeatedTerraformLinesKeepTheirOwnSeq(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	secs := "42." + time.Now().Format("150405000")
	in := f.slowApplyTask(secs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for len(procsWith("sleep "+secs)) == 0 && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	if err := f.exec(ctx, "Apply", in, nil); err == nil {
		t.Fatal("the apply was not interrupted")
	}

	// What the API shows of an entry, and what names it.
	shown := map[string]bool{}
	named := map[string]bool{}
	halted := 0
	for _, e := range f.sink.all(in.Task.ID) {
		if got := fmt.Sprint(e.Metadata["seq"]); got != fmt.Sprint(e.Seq) {
			t.Errorf("%s#%d %q: metadata seq %s", e.Stream, e.Seq, e.Message, got)
		}
		if e.Message != "Error: execution halted" {
			continue
		}
		halted++
		m := e.Metadata
		shown[fmt.Sprint(m["run"], m["step"], m["attempt"], m["component"], api.LogTime(e.Timestamp), e.Message)] = true
		named[fmt.Sprint(m["run"], m["step"], m["attempt"], m["seq"])] = true
	}
	if halted < 2 || len(shown) == halted {
		t.Skipf("this Terraform wrote %d 'execution halted' lines, %d distinct at millisecond precision: nothing to tell apart\n%s",
			halted, len(shown), f.sink.text(in.Task.ID))
	}
	if len(named) != halted {
		t.Errorf("%d 'execution halted' entries have only %d distinct (run, step, attempt, seq)", halted, len(named))
	}
}
