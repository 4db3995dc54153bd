package activities

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// Log components.
const (
	componentTerraform = "terraform"
	componentRunner    = "runner"
)

const (
	// maxMessage caps one log message; Terraform output lines are short.
	maxMessage = 64 << 10
	// flushBatch is the most entries sent in one AppendLogs call.
	flushBatch = 500
)

// logBook collects one stream's log entries (one attempt of one step),
// masks them, appends each to a spool file and flushes them to the sink in
// batches.
//
// Crash safety: every entry is written to the spool with one write(2) as it
// is added, so it survives a SIGKILL of this process; the spool is fsynced
// at each flush; after a successful flush the highest flushed Seq goes to a
// mark file. An activity of the same task that starts later on this host
// re-sends what a spool holds beyond its mark (recoverSpools); the sink
// ignores entries it has already.
//
// An entry's Seq is also in its metadata ("seq"): with run, step and attempt
// it names the entry, so a reader tells a line Terraform wrote twice (an
// interrupted apply ends with one "Error: execution halted" per halted node,
// microseconds apart) from one stored twice, and sees a gap as a lost line.
type logBook struct {
	sink   LogSink
	taskID string
	stream string
	masker *secret.Masker
	base   map[string]any // step, attempt, run
	log    *zap.Logger

	flushMu sync.Mutex // one flush at a time

	mu      sync.Mutex
	seq     int64
	lastTS  time.Time
	pending []store.LogEntry
	flushed int64 // highest Seq known to be in the sink
	spool   *os.File
	spoolFn string
	markFn  string
	// live, when set, is asked right before each send: false stops the
	// flush (the attempt's lease ran out; its lines are diverted).
	live func() bool
}

func spoolName(stream string) string {
	return "log-" + strings.ReplaceAll(stream, "/", "_") + ".jsonl"
}

func markName(spool string) string { return strings.TrimSuffix(spool, ".jsonl") + ".flushed" }

// newLogBook returns a book; with a spoolDir it spools to it, continuing the
// stream's Seq when the spool already exists (the same attempt ran before).
func newLogBook(sink LogSink, taskID, stream, spoolDir string, m *secret.Masker, base map[string]any, log *zap.Logger) *logBook {
	b := &logBook{sink: sink, taskID: taskID, stream: stream, masker: m, base: base, log: log}
	if spoolDir == "" {
		return b
	}
	b.spoolFn = filepath.Join(spoolDir, spoolName(stream))
	b.markFn = markName(b.spoolFn)
	entries, _ := readSpool(b.spoolFn)
	for _, e := range entries {
		b.seq = max(b.seq, e.Seq)
	}
	b.flushed = readMark(b.markFn)
	// Seqs up to the mark are in the sink even when the spool lost them (a
	// crash between removing the spool and its mark): never reuse one.
	b.seq = max(b.seq, b.flushed)
	for _, e := range entries {
		if e.Seq > b.flushed {
			b.pending = append(b.pending, e)
		}
	}
	f, err := os.OpenFile(b.spoolFn, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		log.Warn("cannot open log spool; logs are kept in memory only", zap.Error(err))
		return b
	}
	if torn, err := tornTail(b.spoolFn); err == nil && torn {
		// A crash cut the last line: end it, or the next entry would
		// share its line and be unreadable too.
		_, err = f.Write([]byte{'\n'})
		if err != nil {
			log.Warn("cannot repair log spool; logs are kept in memory only", zap.Error(err))
			f.Close()
			return b
		}
	}
	b.spool = f
	return b
}

// tornTail reports whether a file's last line lacks its newline.
func tornTail(fn string) (bool, error) {
	f, err := os.Open(fn)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return false, err
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, fi.Size()-1); err != nil {
		return false, err
	}
	return last[0] != '\n', nil
}

// add records one entry. meta holds the entry's own metadata (type,
// resource); component and the book's base are added.
func (b *logBook) add(level task.Level, component, msg string, ts time.Time, meta map[string]string) {
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "..."
	}
	md := make(map[string]any, len(b.base)+len(meta)+1)
	for k, v := range b.base {
		if s, ok := v.(string); ok {
			v = b.masker.String(s)
		}
		md[k] = v
	}
	md["component"] = component
	for k, v := range meta {
		if v != "" {
			md[k] = b.masker.String(v)
		}
	}
	if ts.IsZero() {
		ts = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// Some Terraform messages carry whole-second timestamps; never let one
	// read older than the entry before it, so "oldest first" holds.
	if ts.Before(b.lastTS) {
		ts = b.lastTS
	}
	b.lastTS = ts
	b.seq++
	md["seq"] = b.seq
	e := store.LogEntry{
		TaskID:    b.taskID,
		Stream:    b.stream,
		Seq:       b.seq,
		Timestamp: ts.UTC(),
		Level:     level,
		Message:   b.masker.String(msg),
		Metadata:  md,
	}
	b.pending = append(b.pending, e)
	if b.spool != nil {
		line, err := json.Marshal(e)
		if err == nil {
			_, err = b.spool.Write(append(line, '\n'))
		}
		if err != nil {
			b.log.Warn("writing log spool failed; logs are kept in memory only", zap.Error(err))
			b.spool.Close()
			b.spool = nil
		}
	}
}

// runner records a line of the runner's own.
func (b *logBook) runner(level task.Level, format string, args ...any) {
	b.add(level, componentRunner, fmt.Sprintf(format, args...), time.Now(), nil)
}

// flush syncs the spool and sends pending entries to the sink. On failure
// the entries stay pending for the next flush.
func (b *logBook) flush(ctx context.Context) error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()

	b.mu.Lock()
	batch := append([]store.LogEntry(nil), b.pending...)
	if b.spool != nil {
		if err := b.spool.Sync(); err != nil {
			b.log.Warn("syncing log spool failed", zap.Error(err))
		}
	}
	b.mu.Unlock()

	for len(batch) > 0 {
		n := min(len(batch), flushBatch)
		if b.live != nil && !b.live() {
			return errLeaseOver
		}
		if err := b.sink.AppendLogs(ctx, batch[:n]); err != nil {
			return fmt.Errorf("writing task logs: %w", err)
		}
		last := batch[n-1].Seq
		batch = batch[n:]
		b.mu.Lock()
		b.pending = b.pending[n:]
		b.flushed = last
		b.mu.Unlock()
		if b.markFn != "" {
			if err := writeMark(b.markFn, last); err != nil {
				b.log.Warn("writing log spool mark failed", zap.Error(err))
			}
		}
	}
	return nil
}

// errLeaseOver stops a flush of an attempt whose lease ran out.
var errLeaseOver = errors.New("the step's lease ran out: its lines are not sent")

// close flushes what is left and removes the spool once everything is in
// the sink; otherwise the spool stays for recovery.
func (b *logBook) close(ctx context.Context) error {
	err := b.flush(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.spool != nil {
		b.spool.Close()
		b.spool = nil
	}
	if err == nil && len(b.pending) == 0 && b.spoolFn != "" {
		removeSpool(b.spoolFn)
	}
	return err
}

// divert ends a book whose attempt lost its lease (lease.go): the task may
// have ended and gone on elsewhere, so what the attempt has not yet sent is
// not added to the task's log; it goes to the runner's own log, and the
// spool is removed.
func (b *logBook) divert() int {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.pending {
		b.log.Warn("output of an attempt whose lease expired (not added to the task's log)",
			zap.Int64("seq", e.Seq), zap.String("level", string(e.Level)), zap.String("message", e.Message))
	}
	n := len(b.pending)
	b.pending = nil
	if b.spool != nil {
		b.spool.Close()
		b.spool = nil
	}
	if b.spoolFn != "" {
		removeSpool(b.spoolFn)
	}
	return n
}

// recoverSpools sends what earlier streams of a task spooled beyond their
// marks, and removes spools that are then fully flushed. It leaves alone
// the spools for which busy returns true: those of books open in this
// process, which flush themselves.
func recoverSpools(ctx context.Context, sink LogSink, dir string, busy func(path string) bool) (int, error) {
	names, err := filepath.Glob(filepath.Join(dir, "log-*.jsonl"))
	if err != nil || len(names) == 0 {
		return 0, err
	}
	sent := 0
	var errs []error
	for _, fn := range names {
		if busy != nil && busy(fn) {
			continue
		}
		entries, err := readSpool(fn)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		mark := readMark(markName(fn))
		var todo []store.LogEntry
		for _, e := range entries {
			if e.Seq > mark {
				todo = append(todo, e)
			}
		}
		for len(todo) > 0 {
			n := min(len(todo), flushBatch)
			if err = sink.AppendLogs(ctx, todo[:n]); err != nil {
				break
			}
			sent += n
			mark = todo[n-1].Seq
			todo = todo[n:]
			_ = writeMark(markName(fn), mark)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("re-sending spooled logs: %w", err))
			continue
		}
		removeSpool(fn)
	}
	return sent, errors.Join(errs...)
}

// removeSpool removes a fully flushed spool and then its mark: a crash in
// between leaves the spool alone, which is re-sent whole (the sink ignores
// what it has), never a mark that would let a new book reuse its seqs.
func removeSpool(fn string) {
	os.Remove(markName(fn))
	os.Remove(fn)
}

// readSpool reads a spool file; a torn line (a crash mid-write) is
// skipped. Lines have no length limit: only the message is capped, not the
// metadata (a diagnostic's detail), and a line the reader could not take
// would hide every line after it.
func readSpool(fn string) ([]store.LogEntry, error) {
	f, err := os.Open(fn)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	var out []store.LogEntry
	rd := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := rd.ReadBytes('\n')
		var e store.LogEntry
		if len(line) > 0 && json.Unmarshal(line, &e) == nil && e.Seq > 0 {
			out = append(out, e)
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func readMark(fn string) int64 {
	b, err := os.ReadFile(fn)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func writeMark(fn string, seq int64) error {
	tmp := fn + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(seq, 10)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, fn)
}
