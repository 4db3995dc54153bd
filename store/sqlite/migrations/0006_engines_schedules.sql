-- Runner hosts, schedules, and the schedule that started a task (issue 15).

-- What each runner host offers: a row per (runner, host), written when the
-- host starts and refreshed while it runs. engines is a JSON array of
-- {engine, versions, download}.
CREATE TABLE runner_hosts (
	runner_id  TEXT    NOT NULL ON CONFLICT FAIL,
	host_id    TEXT    NOT NULL ON CONFLICT FAIL,
	identity   TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	engines    TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '[]',
	started_at INTEGER NOT NULL ON CONFLICT FAIL,
	updated_at INTEGER NOT NULL ON CONFLICT FAIL,
	PRIMARY KEY (runner_id, host_id)
) WITHOUT ROWID;

-- The schedule index; each row's schedule is a Temporal Schedule of the
-- same ID. definition is the schedule as the API renders it (JSON).
CREATE TABLE schedules (
	id         TEXT    NOT NULL ON CONFLICT FAIL PRIMARY KEY,
	org        TEXT    NOT NULL ON CONFLICT FAIL,
	name       TEXT    NOT NULL ON CONFLICT FAIL,
	kind       TEXT    NOT NULL ON CONFLICT FAIL,
	agent_id   TEXT    NOT NULL ON CONFLICT FAIL,
	runner_id  TEXT    NOT NULL ON CONFLICT FAIL,
	definition TEXT    NOT NULL ON CONFLICT FAIL,
	created_by TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	created_at INTEGER NOT NULL ON CONFLICT FAIL,
	updated_at INTEGER NOT NULL ON CONFLICT FAIL
);
CREATE INDEX schedules_org_created ON schedules (org, created_at, id, agent_id, kind);

-- The schedule that started a task ('' for none), set from the workflow's
-- input, so GET /tasks?schedule=ID lists a schedule's runs. The index holds
-- only scheduled tasks; queries name schedule_id <> '' so it applies.
ALTER TABLE tasks ADD COLUMN schedule_id TEXT NOT NULL ON CONFLICT FAIL DEFAULT '';
CREATE INDEX tasks_org_schedule_created ON tasks (org, schedule_id, created_at, id) WHERE schedule_id <> '';
