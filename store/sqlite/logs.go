package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/internal/sqlkit"
	"github.com/terratask/terratask/task"
)

// logColumns is the column list log queries select, in ListLogs' scan order.
const logColumns = `id, task_id, stream, seq, ts, level, message, metadata`

// insertLogs inserts log entries; a stored (task_id, stream, seq) is skipped.
var insertLogs = multiInsert{
	head:  `INSERT INTO logs (task_id, stream, seq, ts, level, message, metadata)`,
	width: 7,
	tail:  ` ON CONFLICT (task_id, stream, seq) DO NOTHING`,
	sizes: []int{32, 8, 1},
}

// AppendLogs stores entries in one transaction, in slice order, so their IDs
// follow it. An entry whose (TaskID, Stream, Seq) is stored already, or
// repeats an earlier entry of the slice, is dropped. An empty slice is a
// no-op. Every entry needs a TaskID.
func (s *Store) AppendLogs(ctx context.Context, entries []store.LogEntry) error {
	args, err := logsArgs(entries)
	if err != nil {
		return err
	}
	if err := s.insertBatch(ctx, insertLogs, args); err != nil {
		return fmt.Errorf("sqlite store: append logs: %w", err)
	}
	s.feed.publishLogs(entries)
	return nil
}

// logsArgs validates entries and returns insertLogs' arguments.
func logsArgs(entries []store.LogEntry) ([]any, error) {
	args := make([]any, 0, insertLogs.width*len(entries))
	for i, e := range entries {
		if e.TaskID == "" {
			return nil, fmt.Errorf("sqlite store: append logs: entry %d: task ID is required", i)
		}
		meta, err := metadataJSON(e.Metadata)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: append logs: task %s stream %s seq %d: %w", e.TaskID, e.Stream, e.Seq, err)
		}
		args = append(args, e.TaskID, e.Stream, e.Seq, dbTime(e.Timestamp), string(e.Level), e.Message, meta)
	}
	return args, nil
}

// listLogsSQL validates q and returns its statement and arguments.
func listLogsSQL(q store.LogQuery) (string, []any, error) {
	if q.Limit <= 0 {
		return "", nil, fmt.Errorf("limit must be positive, got %d", q.Limit)
	}
	var where strings.Builder
	where.WriteString(`task_id = ? AND id > ?`)
	args := []any{q.TaskID, q.AfterID}
	if q.Since != nil {
		where.WriteString(` AND ts >= ?`)
		args = append(args, dbTime(*q.Since))
	}
	if q.Until != nil {
		where.WriteString(` AND ts <= ?`)
		args = append(args, dbTime(*q.Until))
	}

	levels := sqlkit.Dedupe(q.Levels)
	switch len(levels) {
	case 0:
		return `SELECT ` + logColumns + ` FROM logs WHERE ` + where.String() + ` ORDER BY id LIMIT ?`,
			append(args, q.Limit), nil
	case 1:
		return `SELECT ` + logColumns + ` FROM logs WHERE ` + where.String() + ` AND level = ? ORDER BY id LIMIT ?`,
			append(args, string(levels[0]), q.Limit), nil
	}
	parts := make([]string, len(levels))
	all := make([]any, 0, len(levels)*(len(args)+2)+1)
	for i, l := range levels {
		parts[i] = `SELECT * FROM (SELECT ` + logColumns + ` FROM logs WHERE ` + where.String() +
			` AND level = ? ORDER BY id LIMIT ?)`
		all = append(all, args...)
		all = append(all, string(l), q.Limit)
	}
	return strings.Join(parts, ` UNION ALL `) + ` ORDER BY id LIMIT ?`, append(all, q.Limit), nil
}

// ListLogs returns q.TaskID's entries with ID > q.AfterID, Timestamp within
// [q.Since, q.Until] and Level among q.Levels (all when empty), in ID order,
// at most q.Limit (which must be positive).
//
// With several levels, each level is read from the (task_id, level, id)
// index up to the limit and the runs are merged, so a page costs O(levels x
// limit) however many entries the task has.
func (s *Store) ListLogs(ctx context.Context, q store.LogQuery) ([]store.LogEntry, error) {
	query, args, err := listLogsSQL(q)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list logs: %w", err)
	}
	st, release, err := s.rst.get(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list logs: %w", err)
	}
	defer release()
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list logs: %w", err)
	}
	defer rows.Close()
	entries := make([]store.LogEntry, 0, min(q.Limit, 1000))
	for rows.Next() {
		var (
			e     store.LogEntry
			ts    int64
			level string
			meta  sql.NullString
		)
		if err := rows.Scan(&e.ID, &e.TaskID, &e.Stream, &e.Seq, &ts, &level, &e.Message, &meta); err != nil {
			return nil, fmt.Errorf("sqlite store: list logs: %w", err)
		}
		e.Timestamp = goTime(ts)
		e.Level = task.Level(level)
		switch {
		case q.RawMetadata && meta.Valid:
			e.MetadataJSON = json.RawMessage(meta.String)
		case q.RawMetadata:
		default:
			if e.Metadata, err = goMetadata(meta); err != nil {
				return nil, fmt.Errorf("sqlite store: list logs: entry %d: %w", e.ID, err)
			}
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: list logs: %w", err)
	}
	return entries, nil
}
