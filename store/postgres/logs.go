package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/internal/sqlkit"
	"github.com/terratask/terratask/task"
)

// logColumns is the column list log queries select, in ListLogs' scan order.
const logColumns = `id, task_id, stream, seq, ts, level, message, metadata`

// logLockClass is the first key of the advisory locks that serialise log
// appends per task (the second is the hash of the task ID). Two-key advisory
// locks never collide with one-key ones such as migrationLockKey.
const logLockClass int32 = 0x746c_6f67 // "tlog"

// lockTasksSQL takes the append lock of each task of $1, in one order.
// PostgreSQL evaluates a volatile function of the select list after the
// sort, so the locks are taken in hash order and appends to several tasks
// never deadlock.
const lockTasksSQL = `SELECT pg_advisory_xact_lock($2::integer, h)
	FROM (SELECT DISTINCT hashtext(t) AS h FROM unnest($1::text[]) AS t) AS s
	ORDER BY h`

// insertLogsSQL inserts the entries of column arrays in array order; a
// stored (task_id, stream, seq), or one repeated earlier in the arrays, is
// skipped. The metadata travels as text and is cast here.
const insertLogsSQL = `INSERT INTO logs (task_id, stream, seq, ts, level, message, metadata)
	SELECT task_id, stream, seq, ts, level, message, metadata::json
	FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::text[], $6::text[], $7::text[])
		WITH ORDINALITY AS u (task_id, stream, seq, ts, level, message, metadata, n)
	ORDER BY n
	ON CONFLICT (task_id, stream, seq) DO NOTHING`

// AppendLogs stores entries in one transaction, in slice order, so their IDs
// follow it. An entry whose (TaskID, Stream, Seq) is stored already, or
// repeats an earlier entry of the slice, is dropped. An empty slice is a
// no-op. Every entry needs a TaskID.
//
// The transaction first takes the append lock of each task it writes to, so
// a task's entries are committed in ID order: a reader that has seen an ID
// never later finds a smaller one of the same task. The lock and the insert
// travel in one pipelined batch, which PostgreSQL runs as one implicit
// transaction: one round trip.
func (s *Store) AppendLogs(ctx context.Context, entries []store.LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	var b pgx.Batch
	if err := queueLogs(&b, entries); err != nil {
		return err
	}
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("postgres store: append logs: %w", err)
	}
	return nil
}

// queueLogs queues the statements that append entries: the append lock of
// each task, the insert, and the notification of the tasks' followers
// (sent by PostgreSQL when the transaction commits).
func queueLogs(b *pgx.Batch, entries []store.LogEntry) error {
	n := len(entries)
	var (
		taskIDs, streams, levels, messages = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		seqs                               = make([]int64, n)
		stamps                             = make([]time.Time, n)
		metas                              = make([]*string, n)
	)
	for i, e := range entries {
		if e.TaskID == "" {
			return fmt.Errorf("postgres store: append logs: entry %d: task ID is required", i)
		}
		meta, err := metadataJSON(e.Metadata)
		if err != nil {
			return fmt.Errorf("postgres store: append logs: task %s stream %s seq %d: %w", e.TaskID, e.Stream, e.Seq, err)
		}
		taskIDs[i], streams[i], seqs[i], stamps[i] = txt(e.TaskID), txt(e.Stream), e.Seq, dbTime(e.Timestamp)
		levels[i], messages[i], metas[i] = txt(string(e.Level)), txt(e.Message), textOf(meta)
	}
	tasks := sqlkit.Dedupe(taskIDs)
	b.Queue(lockTasksSQL, tasks, logLockClass)
	b.Queue(insertLogsSQL, taskIDs, streams, seqs, stamps, levels, messages, metas)
	b.Queue(notifyTasksSQL, changesChannel, tasks)
	return nil
}

// listLogsSQL validates q and returns its statement and arguments.
//
// With several levels, each level is read from the (task_id, level, id)
// index up to the limit and the runs are merged, so a page costs O(levels x
// limit) however many entries the task has.
func listLogsSQL(q store.LogQuery) (string, []any, error) {
	if q.Limit <= 0 {
		return "", nil, fmt.Errorf("limit must be positive, got %d", q.Limit)
	}
	args := []any{txt(q.TaskID), q.AfterID}
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var where strings.Builder
	where.WriteString(`task_id = $1 AND id > $2`)
	if q.Since != nil {
		where.WriteString(` AND ts >= ` + param(dbTime(*q.Since)))
	}
	if q.Until != nil {
		where.WriteString(` AND ts <= ` + param(dbTime(*q.Until)))
	}
	levels := sqlkit.Dedupe(q.Levels)
	var lv []string
	for _, l := range levels {
		lv = append(lv, param(txt(string(l))))
	}
	limit := param(int64(q.Limit))

	switch len(lv) {
	case 0:
		return `SELECT ` + logColumns + ` FROM logs WHERE ` + where.String() + ` ORDER BY id LIMIT ` + limit, args, nil
	case 1:
		return `SELECT ` + logColumns + ` FROM logs WHERE ` + where.String() + ` AND level = ` + lv[0] +
			` ORDER BY id LIMIT ` + limit, args, nil
	}
	parts := make([]string, len(lv))
	for i, l := range lv {
		parts[i] = `(SELECT ` + logColumns + ` FROM logs WHERE ` + where.String() + ` AND level = ` + l +
			` ORDER BY id LIMIT ` + limit + `)`
	}
	return `SELECT * FROM (` + strings.Join(parts, ` UNION ALL `) + `) AS u ORDER BY id LIMIT ` + limit, args, nil
}

// ListLogs returns q.TaskID's entries with ID > q.AfterID, Timestamp within
// [q.Since, q.Until] and Level among q.Levels (all when empty), in ID order,
// at most q.Limit (which must be positive).
func (s *Store) ListLogs(ctx context.Context, q store.LogQuery) ([]store.LogEntry, error) {
	query, args, err := listLogsSQL(q)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list logs: %w", err)
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list logs: %w", err)
	}
	defer rows.Close()
	entries := make([]store.LogEntry, 0, min(q.Limit, 1000))
	for rows.Next() {
		var (
			e     store.LogEntry
			level string
			meta  []byte
		)
		if err := rows.Scan(&e.ID, &e.TaskID, &e.Stream, &e.Seq, &e.Timestamp, &level, &e.Message, &meta); err != nil {
			return nil, fmt.Errorf("postgres store: list logs: %w", err)
		}
		e.Timestamp = e.Timestamp.UTC()
		e.Level = task.Level(level)
		switch {
		case q.RawMetadata && meta != nil:
			e.MetadataJSON = json.RawMessage(meta)
		case q.RawMetadata:
		default:
			if e.Metadata, err = goMetadata(meta); err != nil {
				return nil, fmt.Errorf("postgres store: list logs: entry %d: %w", e.ID, err)
			}
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: list logs: %w", err)
	}
	return entries, nil
}
