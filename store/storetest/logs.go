package storetest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/task"
)

// logKey identifies a log entry.
type logKey struct {
	task, stream string
	seq          int64
}

func keyOf(e store.LogEntry) logKey { return logKey{e.TaskID, e.Stream, e.Seq} }

// listLogs returns every entry q selects, paging with AfterID when the store
// returns full pages.
func listLogs(t testing.TB, s store.Store, q store.LogQuery) []store.LogEntry {
	t.Helper()
	var all []store.LogEntry
	for {
		page, err := s.ListLogs(t.Context(), q)
		if err != nil {
			t.Fatalf("ListLogs(%+v): %v", q, err)
		}
		all = append(all, page...)
		if len(page) < q.Limit {
			return all
		}
		q.AfterID = page[len(page)-1].ID
	}
}

// expectLogs checks got holds want's entries, in want's order, with strictly
// increasing IDs and every field round-tripped.
func expectLogs(t testing.TB, got, want []store.LogEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d log entries, want %d", len(got), len(want))
	}
	var last int64
	for i, g := range got {
		w := want[i]
		if keyOf(g) != keyOf(w) {
			t.Fatalf("entry %d is %+v, want %+v", i, keyOf(g), keyOf(w))
		}
		if g.ID <= last {
			t.Errorf("entry %d: ID %d after %d, want strictly increasing IDs", i, g.ID, last)
		}
		last = g.ID
		if g.Level != w.Level || g.Message != w.Message {
			t.Errorf("entry %d: level %q message %q, want %q %q", i, g.Level, g.Message, w.Level, w.Message)
		}
		if !g.Timestamp.Equal(us(w.Timestamp)) || g.Timestamp.Location() != time.UTC {
			t.Errorf("entry %d: timestamp %v, want %v", i, g.Timestamp, us(w.Timestamp))
		}
		if gm, wm := normMeta(g.Metadata), normMeta(w.Metadata); !reflect.DeepEqual(gm, wm) {
			t.Errorf("entry %d: metadata %s, want %s", i, jsonString(gm), jsonString(wm))
		}
	}
}

// interleave returns a's and b's entries alternately, then the rest.
func interleave(a, b []store.LogEntry) []store.LogEntry {
	out := make([]store.LogEntry, 0, len(a)+len(b))
	for i := 0; i < max(len(a), len(b)); i++ {
		if i < len(a) {
			out = append(out, a[i])
		}
		if i < len(b) {
			out = append(out, b[i])
		}
	}
	return out
}

func (h *harness) testLogsIdempotent(t *testing.T) {
	s := h.open(t)
	id := h.name("task")
	batch := interleave(
		GenLogs(id, "run1/installing/attempt1", 1, 10, baseTime),
		GenLogs(id, "task", 1, 3, baseTime.Add(time.Second)),
	)
	for range 2 {
		if err := s.AppendLogs(t.Context(), batch); err != nil {
			t.Fatalf("AppendLogs: %v", err)
		}
	}
	got := listLogs(t, s, store.LogQuery{TaskID: id, Limit: 100})
	expectLogs(t, got, batch)
	for _, e := range got {
		if e.ID <= 0 {
			t.Fatalf("entry %+v has no ID", keyOf(e))
		}
	}

	// A retried flush that overlaps the stored tail stores only the new part,
	// after what is stored.
	overlap := GenLogs(id, "run1/installing/attempt1", 8, 8, baseTime) // seq 8..15
	if err := s.AppendLogs(t.Context(), overlap); err != nil {
		t.Fatalf("AppendLogs: %v", err)
	}
	got = listLogs(t, s, store.LogQuery{TaskID: id, Limit: 100})
	expectLogs(t, got, append(append([]store.LogEntry{}, batch...), overlap[3:]...))
}

func (h *harness) testLogsDuplicateInBatch(t *testing.T) {
	s := h.open(t)
	id := h.name("task")
	es := GenLogs(id, "s", 1, 4, baseTime)
	dup := es[1]
	dup.Message = "a second copy with another message"
	batch := []store.LogEntry{es[0], es[1], dup, es[2], es[3]}
	if err := s.AppendLogs(t.Context(), batch); err != nil {
		t.Fatalf("AppendLogs: %v", err)
	}
	expectLogs(t, listLogs(t, s, store.LogQuery{TaskID: id, Limit: 10}), es)
}

func (h *harness) testLogsEmpty(t *testing.T) {
	s := h.open(t)
	if err := s.AppendLogs(t.Context(), nil); err != nil {
		t.Errorf("AppendLogs(nil) = %v", err)
	}
	if err := s.AppendLogs(t.Context(), []store.LogEntry{}); err != nil {
		t.Errorf("AppendLogs(empty) = %v", err)
	}
	got, err := s.ListLogs(t.Context(), store.LogQuery{TaskID: h.name("task"), Limit: 10})
	if err != nil || len(got) != 0 {
		t.Errorf("ListLogs of a task without logs: %d entries, error %v", len(got), err)
	}
}

func (h *harness) testLogsIsolation(t *testing.T) {
	s := h.open(t)
	a, b := h.name("task"), h.name("task")
	// The same stream name and seqs in two tasks are different entries.
	la, lb := GenLogs(a, "task", 1, 20, baseTime), GenLogs(b, "task", 1, 15, baseTime)
	if err := s.AppendLogs(t.Context(), interleave(la, lb)); err != nil {
		t.Fatal(err)
	}
	expectLogs(t, listLogs(t, s, store.LogQuery{TaskID: a, Limit: 6}), la)
	expectLogs(t, listLogs(t, s, store.LogQuery{TaskID: b, Limit: 6}), lb)
}

func (h *harness) testLogsSinceUntil(t *testing.T) {
	s := h.open(t)
	id := h.name("task")
	es := GenLogs(id, "s", 1, 50, baseTime) // timestamps baseTime + seq ms
	SeedLogs(t, s, es)
	at := func(i int) *time.Time { return ptr(es[i].Timestamp) }
	for _, c := range []struct {
		name         string
		since, until *time.Time
		from, to     int // expected es[from:to]
	}{
		{"none", nil, nil, 0, 50},
		{"since inclusive", at(10), nil, 10, 50},
		{"until inclusive", nil, at(19), 0, 20},
		{"both inclusive", at(5), at(14), 5, 15},
		{"one instant", at(7), at(7), 7, 8},
		{"between entries", ptr(es[3].Timestamp.Add(time.Microsecond)), ptr(es[6].Timestamp.Add(-time.Microsecond)), 4, 6},
		{"empty range", at(9), at(8), 0, 0},
		{"after all", ptr(es[49].Timestamp.Add(time.Second)), nil, 0, 0},
		{"other zone", ptr(es[10].Timestamp.In(time.FixedZone("X", -7*3600))), at(12), 10, 13},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := listLogs(t, s, store.LogQuery{TaskID: id, Since: c.since, Until: c.until, Limit: 7})
			expectLogs(t, got, es[c.from:c.to])
		})
	}
}

func (h *harness) testLogsLevels(t *testing.T) {
	s := h.open(t)
	id := h.name("task")
	es := GenLogs(id, "s", 1, 400, baseTime)
	SeedLogs(t, s, es)
	filter := func(levels ...task.Level) []store.LogEntry {
		var out []store.LogEntry
		for _, e := range es {
			for _, l := range levels {
				if e.Level == l {
					out = append(out, e)
					break
				}
			}
		}
		return out
	}
	for _, c := range []struct {
		name   string
		levels []task.Level
		want   []store.LogEntry
	}{
		{"all", nil, es},
		{"error", []task.Level{task.LevelError}, filter(task.LevelError)},
		{"warn", []task.Level{task.LevelWarn}, filter(task.LevelWarn)},
		{"warn,error", []task.Level{task.LevelWarn, task.LevelError}, filter(task.LevelWarn, task.LevelError)},
		{"error,debug", []task.Level{task.LevelError, task.LevelDebug}, filter(task.LevelError, task.LevelDebug)},
		{"every level", task.Levels, es},
		{"repeated", []task.Level{task.LevelInfo, task.LevelInfo}, filter(task.LevelInfo)},
		{"unknown", []task.Level{"fatal"}, nil},
		{"unknown and error", []task.Level{"fatal", task.LevelError}, filter(task.LevelError)},
	} {
		for _, limit := range []int{5, 1000} {
			t.Run(fmt.Sprintf("%s/limit=%d", c.name, limit), func(t *testing.T) {
				expectLogs(t, listLogs(t, s, store.LogQuery{TaskID: id, Levels: c.levels, Limit: limit}), c.want)
			})
		}
	}
	// Levels with a time window and a cursor together.
	warnErr := filter(task.LevelWarn, task.LevelError)
	since, until := es[100].Timestamp, es[299].Timestamp
	var want []store.LogEntry
	for _, e := range warnErr {
		if !e.Timestamp.Before(since) && !e.Timestamp.After(until) {
			want = append(want, e)
		}
	}
	got := listLogs(t, s, store.LogQuery{TaskID: id, Levels: []task.Level{task.LevelError, task.LevelWarn},
		Since: &since, Until: &until, Limit: 3})
	expectLogs(t, got, want)
}

func (h *harness) testLogsPaging(t *testing.T) {
	s := h.open(t)
	id := h.name("task")
	es := GenLogs(id, "s", 1, 103, baseTime)
	SeedLogs(t, s, es)
	all := listLogs(t, s, store.LogQuery{TaskID: id, Limit: 1000})
	expectLogs(t, all, es)

	var pages [][]store.LogEntry
	q := store.LogQuery{TaskID: id, Limit: 10}
	for {
		page, err := s.ListLogs(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > q.Limit {
			t.Fatalf("page of %d entries with limit %d", len(page), q.Limit)
		}
		if page[0].ID <= q.AfterID {
			t.Fatalf("page after ID %d starts at ID %d", q.AfterID, page[0].ID)
		}
		pages = append(pages, page)
		q.AfterID = page[len(page)-1].ID
	}
	if len(pages) != 11 {
		t.Errorf("%d pages of 10 for 103 entries, want 11", len(pages))
	}
	var joined []store.LogEntry
	for _, p := range pages {
		joined = append(joined, p...)
	}
	expectLogs(t, joined, es)

	// A cursor in the middle, and one past the end.
	mid := all[49].ID
	expectLogs(t, listLogs(t, s, store.LogQuery{TaskID: id, AfterID: mid, Limit: 1000}), es[50:])
	expectLogs(t, listLogs(t, s, store.LogQuery{TaskID: id, AfterID: all[102].ID, Limit: 1000}), nil)

	// Entries appended later come after the cursor.
	more := GenLogs(id, "s2", 1, 5, baseTime.Add(time.Hour))
	if err := s.AppendLogs(t.Context(), more); err != nil {
		t.Fatal(err)
	}
	expectLogs(t, listLogs(t, s, store.LogQuery{TaskID: id, AfterID: all[102].ID, Limit: 2}), more)
}

func (h *harness) testLogsRoundTrip(t *testing.T) {
	s := h.open(t)
	id := h.name("task")
	zone := time.FixedZone("UTC-3", -3*3600)
	es := []store.LogEntry{
		{TaskID: id, Stream: "run1/applying/attempt2", Seq: 1, Timestamp: baseTime.In(zone), Level: task.LevelInfo,
			Message: "aws_s3_bucket.logs: Creating...",
			Metadata: map[string]any{
				"component": "terraform", "step": "applying", "attempt": 2, "address": "aws_s3_bucket.logs",
				"nested": map[string]any{"list": []any{1, "x", nil, true}, "f": 1.5},
			}},
		{TaskID: id, Stream: "run1/applying/attempt2", Seq: 2, Timestamp: baseTime.Add(time.Nanosecond),
			Level: task.LevelError, Message: "multi\nline\tmessage with unicode ✓ and 'quotes'"},
		{TaskID: id, Stream: "task", Seq: 1, Timestamp: baseTime.Add(-time.Hour), Level: task.LevelDebug,
			Message: "", Metadata: map[string]any{}},
	}
	if err := s.AppendLogs(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	got := listLogs(t, s, store.LogQuery{TaskID: id, Limit: 10})
	expectLogs(t, got, es)
	if len(got) == 3 {
		if got[0].Timestamp.Location() != time.UTC {
			t.Errorf("timestamp location %v, want UTC", got[0].Timestamp.Location())
		}
		if got[0].TaskID != id || got[0].Stream != es[0].Stream || got[0].Seq != 1 {
			t.Errorf("entry identity = %+v", keyOf(got[0]))
		}
	}
	// RawMetadata: the same entries, metadata as the stored JSON object.
	raw := listLogs(t, s, store.LogQuery{TaskID: id, Limit: 10, RawMetadata: true})
	if len(raw) != len(got) {
		t.Fatalf("raw metadata: %d entries, want %d", len(raw), len(got))
	}
	for i := range raw {
		if raw[i].Metadata != nil || raw[i].ID != got[i].ID || raw[i].Message != got[i].Message {
			t.Errorf("raw entry %d = %+v, want %+v without Metadata", i, raw[i], got[i])
		}
		var m map[string]any
		if len(raw[i].MetadataJSON) > 0 {
			if err := json.Unmarshal(raw[i].MetadataJSON, &m); err != nil {
				t.Fatalf("raw entry %d: metadata %q: %v", i, raw[i].MetadataJSON, err)
			}
		}
		if !reflect.DeepEqual(normJSON(m), normJSON(got[i].Metadata)) {
			t.Errorf("raw entry %d: metadata %s, want %v", i, raw[i].MetadataJSON, got[i].Metadata)
		}
	}
}

func (h *harness) testLogsValidation(t *testing.T) {
	s := h.open(t)
	for _, limit := range []int{0, -5} {
		if _, err := s.ListLogs(t.Context(), store.LogQuery{TaskID: h.name("task"), Limit: limit}); err == nil {
			t.Errorf("ListLogs with limit %d succeeded, want an error", limit)
		}
	}
}
