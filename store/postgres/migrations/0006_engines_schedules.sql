-- Runner hosts, schedules, and the schedule that started a task (issue 15).

-- What each runner host offers: a row per (runner, host), written when the
-- host starts and refreshed while it runs. engines is a JSON array of
-- {engine, versions, download}.
CREATE TABLE runner_hosts (
	runner_id  text COLLATE "C" NOT NULL,
	host_id    text COLLATE "C" NOT NULL,
	identity   text             NOT NULL DEFAULT '',
	engines    json             NOT NULL,
	started_at timestamptz      NOT NULL,
	updated_at timestamptz      NOT NULL,
	PRIMARY KEY (runner_id, host_id)
);

-- The schedule index; each row's schedule is a Temporal Schedule of the
-- same ID. definition is the schedule as the API renders it.
CREATE TABLE schedules (
	id         text COLLATE "C" NOT NULL PRIMARY KEY,
	org        text COLLATE "C" NOT NULL,
	name       text             NOT NULL,
	kind       text COLLATE "C" NOT NULL,
	agent_id   text COLLATE "C" NOT NULL,
	runner_id  text COLLATE "C" NOT NULL,
	definition json             NOT NULL,
	created_by text             NOT NULL DEFAULT '',
	created_at timestamptz      NOT NULL,
	updated_at timestamptz      NOT NULL
);
CREATE INDEX schedules_org_created ON schedules (org, created_at, id) INCLUDE (agent_id, kind);

-- The schedule that started a task ('' for none), set from the workflow's
-- input, so GET /tasks?schedule=ID lists a schedule's runs. The index holds
-- only scheduled tasks; queries name schedule_id <> '' so it applies.
ALTER TABLE tasks ADD COLUMN schedule_id text COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX tasks_org_schedule_created ON tasks (org, schedule_id, created_at, id) WHERE schedule_id <> '';
