-- Task index and task log entries.
--
-- Timestamps are INTEGER microseconds since the Unix epoch, UTC, so they sort
-- numerically and round-trip with microsecond precision (the precision of
-- PostgreSQL's timestamptz). Nullable timestamps are NULL when unset.
-- metadata and result are JSON text, NULL when absent.
--
-- NOT NULL constraints fail with ON CONFLICT FAIL rather than the default
-- ABORT: the Store never writes NULL there, and a constraint that can ABORT a
-- statement makes SQLite keep a statement journal for every INSERT inside a
-- transaction, which costs batched inserts about a fifth of their time. A
-- FAIL still returns the error and the Store rolls the transaction back.

CREATE TABLE tasks (
	id              TEXT    NOT NULL ON CONFLICT FAIL PRIMARY KEY,
	org             TEXT    NOT NULL ON CONFLICT FAIL,
	name            TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	description     TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	agent_id        TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	runner_id       TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	status          TEXT    NOT NULL ON CONFLICT FAIL,
	progress        INTEGER NOT NULL ON CONFLICT FAIL DEFAULT 0,
	metadata        TEXT,
	current_step    TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	steps_completed INTEGER NOT NULL ON CONFLICT FAIL DEFAULT 0,
	total_steps     INTEGER NOT NULL ON CONFLICT FAIL DEFAULT 0,
	result          TEXT,
	created_at      INTEGER NOT NULL ON CONFLICT FAIL,
	updated_at      INTEGER NOT NULL ON CONFLICT FAIL,
	started_at      INTEGER,
	completed_at    INTEGER,
	cancelled_at    INTEGER,
	cancelled_by    TEXT    NOT NULL ON CONFLICT FAIL DEFAULT ''
);

-- Lists read a page of rowids from an index in (sort, id) order, then fetch
-- just those rows. Each (filter, sort) pair the API serves most has an index
-- whose equality prefix is the filter and whose next columns are the sort key
-- and the id tiebreak, so a page walks the index in order without sorting.
-- The org-wide sort indexes also carry the filter columns, so any other
-- filter combination is checked inside the index while walking it in order
-- (or the planner sorts a filtered subset of small index records instead).
-- A transition only changes status, updated_at and non-indexed columns, so
-- the agent and runner indexes are never rewritten by one.
CREATE INDEX tasks_org_created        ON tasks (org, created_at, id, status, agent_id, runner_id);
CREATE INDEX tasks_org_updated        ON tasks (org, updated_at, id, status, agent_id, runner_id);
CREATE INDEX tasks_org_status         ON tasks (org, status, id, agent_id, runner_id);
CREATE INDEX tasks_org_status_created ON tasks (org, status, created_at, id);
CREATE INDEX tasks_org_status_updated ON tasks (org, status, updated_at, id);
CREATE INDEX tasks_org_agent_created  ON tasks (org, agent_id, created_at, id);
CREATE INDEX tasks_org_runner_created ON tasks (org, runner_id, created_at, id);

-- Task counts per (org, status, agent, runner), kept by triggers in the
-- transaction of every change, so a list's total is a sum over a few rows
-- instead of a count over every matching task.
CREATE TABLE task_counts (
	org       TEXT    NOT NULL ON CONFLICT FAIL,
	status    TEXT    NOT NULL ON CONFLICT FAIL,
	agent_id  TEXT    NOT NULL ON CONFLICT FAIL,
	runner_id TEXT    NOT NULL ON CONFLICT FAIL,
	n         INTEGER NOT NULL ON CONFLICT FAIL,
	PRIMARY KEY (org, status, agent_id, runner_id)
) WITHOUT ROWID;

CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks
BEGIN
	INSERT OR IGNORE INTO task_counts (org, status, agent_id, runner_id, n)
		VALUES (new.org, new.status, new.agent_id, new.runner_id, 0);
	UPDATE task_counts SET n = n + 1
		WHERE org = new.org AND status = new.status AND agent_id = new.agent_id AND runner_id = new.runner_id;
END;

CREATE TRIGGER tasks_count_update AFTER UPDATE OF org, status, agent_id, runner_id ON tasks
	WHEN old.org IS NOT new.org OR old.status IS NOT new.status
		OR old.agent_id IS NOT new.agent_id OR old.runner_id IS NOT new.runner_id
BEGIN
	UPDATE task_counts SET n = n - 1
		WHERE org = old.org AND status = old.status AND agent_id = old.agent_id AND runner_id = old.runner_id;
	DELETE FROM task_counts
		WHERE org = old.org AND status = old.status AND agent_id = old.agent_id AND runner_id = old.runner_id
		AND n <= 0;
	INSERT OR IGNORE INTO task_counts (org, status, agent_id, runner_id, n)
		VALUES (new.org, new.status, new.agent_id, new.runner_id, 0);
	UPDATE task_counts SET n = n + 1
		WHERE org = new.org AND status = new.status AND agent_id = new.agent_id AND runner_id = new.runner_id;
END;

CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks
BEGIN
	UPDATE task_counts SET n = n - 1
		WHERE org = old.org AND status = old.status AND agent_id = old.agent_id AND runner_id = old.runner_id;
	DELETE FROM task_counts
		WHERE org = old.org AND status = old.status AND agent_id = old.agent_id AND runner_id = old.runner_id
		AND n <= 0;
END;

-- Log entries. id is assigned in insertion order and never reused, so it is
-- both the ordering and the paging cursor. (task_id, stream, seq) identifies an
-- entry: a retried flush inserts nothing new.
CREATE TABLE logs (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	task_id  TEXT    NOT NULL ON CONFLICT FAIL,
	stream   TEXT    NOT NULL ON CONFLICT FAIL,
	seq      INTEGER NOT NULL ON CONFLICT FAIL,
	ts       INTEGER NOT NULL ON CONFLICT FAIL,
	level    TEXT    NOT NULL ON CONFLICT FAIL,
	message  TEXT    NOT NULL ON CONFLICT FAIL,
	metadata TEXT,
	UNIQUE (task_id, stream, seq)
);

-- A page walks one of these in id order; ts rides along so Since and Until
-- are checked in the index, without reading the rows they reject.
CREATE INDEX logs_task       ON logs (task_id, id, ts);
CREATE INDEX logs_task_level ON logs (task_id, level, id, ts);
