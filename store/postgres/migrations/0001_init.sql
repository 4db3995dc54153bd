-- Task index and task log entries.
--
-- Text columns that lists filter or sort by are COLLATE "C": they compare
-- bytewise, as SQLite does, whatever the database's default collation, and
-- equality on them uses plain btree indexes. Timestamps are timestamptz
-- (microsecond precision); nullable timestamps are NULL when unset. metadata
-- and result are json (the text as encoded, NULL when absent): the store
-- never queries inside them, json keeps what the Store wrote verbatim and,
-- unlike jsonb, accepts every string Go encodes (jsonb rejects \u0000).

CREATE TABLE tasks (
	id              text COLLATE "C" NOT NULL PRIMARY KEY,
	org             text COLLATE "C" NOT NULL,
	name            text             NOT NULL DEFAULT '',
	description     text             NOT NULL DEFAULT '',
	agent_id        text COLLATE "C" NOT NULL DEFAULT '',
	runner_id       text COLLATE "C" NOT NULL DEFAULT '',
	status          text COLLATE "C" NOT NULL,
	progress        integer          NOT NULL DEFAULT 0,
	metadata        json,
	current_step    text             NOT NULL DEFAULT '',
	steps_completed integer          NOT NULL DEFAULT 0,
	total_steps     integer          NOT NULL DEFAULT 0,
	result          json,
	created_at      timestamptz      NOT NULL,
	updated_at      timestamptz      NOT NULL,
	started_at      timestamptz,
	completed_at    timestamptz,
	cancelled_at    timestamptz,
	cancelled_by    text             NOT NULL DEFAULT ''
);

-- A list page walks an index in (sort, id) order from the org's end, so a
-- page reads about limit + offset index entries (and, at deep offsets, no
-- table rows for the entries it skips: an index-only scan). Each (filter, sort) pair the API serves most has
-- an index whose equality prefix is the filter and whose next columns are the
-- sort key and the id tiebreak. The org-wide sort indexes also carry the
-- filter columns as trailing key columns, so any other filter combination is
-- checked inside the index (an index condition) while walking it in order. A
-- B-tree is walked backwards as easily as forwards: one index serves both
-- directions.
CREATE INDEX tasks_org_created        ON tasks (org, created_at, id, status, agent_id, runner_id);
CREATE INDEX tasks_org_updated        ON tasks (org, updated_at, id, status, agent_id, runner_id);
CREATE INDEX tasks_org_status         ON tasks (org, status, id, agent_id, runner_id);
CREATE INDEX tasks_org_status_created ON tasks (org, status, created_at, id);
CREATE INDEX tasks_org_status_updated ON tasks (org, status, updated_at, id);
CREATE INDEX tasks_org_agent_created  ON tasks (org, agent_id, created_at, id);
CREATE INDEX tasks_org_runner_created ON tasks (org, runner_id, created_at, id);

-- Task counts per (org, status, agent, runner), kept by triggers in the
-- transaction of every change, so a list's total is a sum over a few rows
-- instead of a count over every matching task. Rows at zero are deleted.
--
-- Count rows are locked in one global order (the primary key's, bytewise):
-- statement triggers apply their deltas sorted, and the row trigger of an
-- update applies its two deltas sorted. So transactions that change counts
-- never deadlock on them.
CREATE TABLE task_counts (
	org       text COLLATE "C" NOT NULL,
	status    text COLLATE "C" NOT NULL,
	agent_id  text COLLATE "C" NOT NULL,
	runner_id text COLLATE "C" NOT NULL,
	n         bigint           NOT NULL,
	PRIMARY KEY (org, status, agent_id, runner_id)
);

-- The insert and delete triggers are statement triggers: a bulk insert
-- applies one delta per key it touched, not one per row.
CREATE FUNCTION task_counts_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO task_counts AS c (org, status, agent_id, runner_id, n)
		SELECT org, status, agent_id, runner_id, count(*) FROM new_rows
		GROUP BY org, status, agent_id, runner_id
		ORDER BY org, status, agent_id, runner_id
	ON CONFLICT (org, status, agent_id, runner_id) DO UPDATE SET n = c.n + excluded.n;
	RETURN NULL;
END $$;

CREATE FUNCTION task_counts_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO task_counts AS c (org, status, agent_id, runner_id, n)
		SELECT org, status, agent_id, runner_id, -count(*) FROM old_rows
		GROUP BY org, status, agent_id, runner_id
		ORDER BY org, status, agent_id, runner_id
	ON CONFLICT (org, status, agent_id, runner_id) DO UPDATE SET n = c.n + excluded.n;
	DELETE FROM task_counts AS c USING (SELECT DISTINCT org, status, agent_id, runner_id FROM old_rows) AS d
		WHERE (c.org, c.status, c.agent_id, c.runner_id) = (d.org, d.status, d.agent_id, d.runner_id) AND c.n <= 0;
	RETURN NULL;
END $$;

-- The update trigger is a row trigger: most updates are transitions that keep
-- the status (progress, steps), and its WHEN clause skips them without calling
-- the function. (A statement trigger with transition tables cannot be limited
-- to some columns, so it would run for every transition.)
CREATE FUNCTION task_counts_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO task_counts AS c (org, status, agent_id, runner_id, n)
		SELECT * FROM (VALUES
			(OLD.org, OLD.status, OLD.agent_id, OLD.runner_id, -1::bigint),
			(NEW.org, NEW.status, NEW.agent_id, NEW.runner_id, 1::bigint)
		) AS v (org, status, agent_id, runner_id, n)
		ORDER BY org, status, agent_id, runner_id
	ON CONFLICT (org, status, agent_id, runner_id) DO UPDATE SET n = c.n + excluded.n;
	DELETE FROM task_counts
		WHERE (org, status, agent_id, runner_id) = (OLD.org, OLD.status, OLD.agent_id, OLD.runner_id) AND n <= 0;
	RETURN NULL;
END $$;

CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION task_counts_after_insert();

CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION task_counts_after_delete();

CREATE TRIGGER tasks_count_update AFTER UPDATE OF org, status, agent_id, runner_id ON tasks
	FOR EACH ROW
	WHEN (OLD.org IS DISTINCT FROM NEW.org OR OLD.status IS DISTINCT FROM NEW.status
		OR OLD.agent_id IS DISTINCT FROM NEW.agent_id OR OLD.runner_id IS DISTINCT FROM NEW.runner_id)
	EXECUTE FUNCTION task_counts_after_update();

-- Log entries. id is assigned in insertion order and never reused, so it is
-- both the ordering and the paging cursor; no query looks an entry up by id
-- alone, so it has no index of its own. (task_id, stream, seq) identifies an
-- entry: a retried flush inserts nothing new.
CREATE TABLE logs (
	id       bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
	task_id  text COLLATE "C" NOT NULL,
	stream   text COLLATE "C" NOT NULL,
	seq      bigint           NOT NULL,
	ts       timestamptz      NOT NULL,
	level    text COLLATE "C" NOT NULL,
	message  text             NOT NULL,
	metadata json,
	PRIMARY KEY (task_id, stream, seq)
);

-- A page walks one of these in id order; ts is a trailing key column so Since
-- and Until are checked in the index, without reading the rows they reject.
CREATE INDEX logs_task       ON logs (task_id, id, ts);
CREATE INDEX logs_task_level ON logs (task_id, level, id, ts);
