package devserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"modernc.org/sqlite"
)

// SQLite settings shared by Temporal's connection and ours.
//
// WAL lets readers (the UI, an inspecting sqlite3 shell) run next to the
// writer and needs far fewer fsyncs; synchronous=NORMAL is durable across
// process crashes, which is what a dev server needs.
var sqlitePragmas = map[string]string{
	"journal_mode": "wal",
	"synchronous":  "normal",
	"busy_timeout": "10000",
}

// instancePragma tags the DSN of every server instance, see connRegistry.
// SQLite ignores pragmas it does not know, so it has no effect on the
// connection itself.
const instancePragma = "terratask_devserver_instance"

// Temporal's SQLite plugin keeps a process-wide pool of *sqlx.DB keyed by DSN
// and never closes them (not even on server Stop). To really release the file
// on Stop, every Start uses a DSN made unique by instancePragma, a connection
// hook remembers the driver connections opened for that DSN, and Stop closes
// them. Because the DSN differs per Start, a later Start never picks up a
// pooled handle whose connection was closed, nor one that still points at a
// database file that was deleted and re-created in the meantime.
type connRegistry struct {
	mu    sync.Mutex
	conns map[int64][]io.Closer
}

var (
	registry     = &connRegistry{conns: make(map[int64][]io.Closer)}
	instanceSeq  atomic.Int64
	registerHook sync.Once
)

func installConnHook() {
	registerHook.Do(func() {
		// RegisterConnectionHook is not safe to call concurrently with
		// opening connections; all our callers go through this Once before
		// the first connection with our DSN is opened.
		sqlite.RegisterConnectionHook(func(conn sqlite.ExecQuerierContext, dsn string) error {
			id, ok := instanceFromDSN(dsn)
			if !ok {
				return nil
			}
			c, ok := conn.(io.Closer)
			if !ok {
				return nil
			}
			registry.mu.Lock()
			if _, tracked := registry.conns[id]; tracked {
				registry.conns[id] = append(registry.conns[id], c)
			}
			registry.mu.Unlock()
			return nil
		})
	})
}

func (r *connRegistry) track(id int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns[id] = nil
}

// closeAll closes the driver connections opened for instance id and stops
// tracking it.
func (r *connRegistry) closeAll(id int64) error {
	r.mu.Lock()
	conns := r.conns[id]
	delete(r.conns, id)
	r.mu.Unlock()
	var errs []error
	for _, c := range conns {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func instanceFromDSN(dsn string) (int64, bool) {
	_, query, ok := strings.Cut(dsn, "?")
	if !ok || !strings.Contains(query, instancePragma) {
		return 0, false
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return 0, false
	}
	for _, p := range q["_pragma"] {
		if v, ok := strings.CutPrefix(p, instancePragma+"="); ok {
			id, err := strconv.ParseInt(v, 10, 64)
			return id, err == nil
		}
	}
	return 0, false
}

// temporalSQLConfig is the persistence config Temporal uses for path, tagged
// with instance id.
func temporalSQLConfig(path string, id int64) *config.SQL {
	attrs := map[string]string{"mode": "rwc", instancePragma: strconv.FormatInt(id, 10)}
	for k, v := range sqlitePragmas {
		attrs[k] = v
	}
	return &config.SQL{
		PluginName:        sqliteplugin.PluginName,
		DatabaseName:      path,
		ConnectAttributes: attrs,
	}
}

// ourDSN is the DSN for the short-lived connection used to check and create
// the schema. It is not tagged, so the hook ignores it; it is closed normally.
func ourDSN(path string) string {
	v := url.Values{}
	v.Set("mode", "rwc")
	for k, val := range sqlitePragmas {
		v.Add("_pragma", k+"="+val)
	}
	return "file:" + path + "?" + v.Encode()
}

var createTableRE = regexp.MustCompile(`(?is)^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?["\x60]?([A-Za-z_][A-Za-z0-9_]*)`)

// schemaStatements returns Temporal's SQLite schema (main and visibility) as
// individual statements, as sqliteschema.SetupSchemaOnDB would run them.
func schemaStatements() ([]string, error) {
	var rec stmtRecorder
	if err := sqliteschema.SetupSchemaOnDB(&rec); err != nil {
		return nil, err
	}
	if len(rec.stmts) == 0 {
		return nil, errors.New("temporal sqlite schema is empty")
	}
	return rec.stmts, nil
}

// stmtRecorder is an sqlplugin.AdminDB that records the statements
// SetupSchemaOnDB executes. SetupSchemaOnDB only calls Exec; any other method
// would hit the nil embedded interface and panic, which ensureSchema turns
// into an error.
type stmtRecorder struct {
	sqlplugin.AdminDB
	stmts []string
}

func (r *stmtRecorder) Exec(stmt string, _ ...any) error {
	r.stmts = append(r.stmts, stmt)
	return nil
}

// ensureSchema opens path (creating the file if needed) and creates
// Temporal's schema in one transaction if the database has no tables yet.
// A database that already has every table is left alone. A database with
// only some of them is refused: it was made by another Temporal version or
// is not a dev server database, and guessing would risk corrupting it.
// It reports whether the schema was created.
func ensureSchema(ctx context.Context, path string) (created bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("preparing temporal sqlite schema: %v", r)
		}
	}()
	stmts, err := schemaStatements()
	if err != nil {
		return false, fmt.Errorf("load temporal sqlite schema: %w", err)
	}
	var want []string
	for _, s := range stmts {
		if m := createTableRE.FindStringSubmatch(s); m != nil {
			want = append(want, m[1])
		}
	}

	db, err := sql.Open("sqlite", ourDSN(path))
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	defer func() { _ = db.Close() }()
	db.SetMaxOpenConns(1)

	existing := map[string]bool{}
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	if err != nil {
		return false, fmt.Errorf("read %s (is it a SQLite database?): %w", path, err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			_ = rows.Close()
			return false, fmt.Errorf("read %s: %w", path, err)
		}
		existing[name] = true
	}
	if err := rows.Close(); err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}

	var missing []string
	for _, t := range want {
		if !existing[t] {
			missing = append(missing, t)
		}
	}
	switch {
	case len(missing) == 0:
		return false, dropVisibilityIndexes(ctx, db, stmts)
	case len(existing) > 0:
		return false, fmt.Errorf("%s is not a usable dev server database: it has %d tables but lacks %v (made by another Temporal version, or not a Temporal database); move it away to start fresh",
			path, len(existing), missing)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("create schema in %s: %w", path, err)
	}
	for _, s := range stmts {
		if droppedVisibilityIndex(s) != "" {
			continue // see visibility.go
		}
		if _, err := tx.ExecContext(ctx, s); err != nil {
			_ = tx.Rollback()
			return false, fmt.Errorf("create schema in %s: %q: %w", path, s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("create schema in %s: commit: %w", path, err)
	}
	return true, nil
}
