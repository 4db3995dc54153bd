-- Plan review and approval: each task's review of its plan and its plan's
-- counts (JSON text, NULL until set; written by transitions only), the plan
-- reviewers read (masked JSON and text) and the sealed binary plan file an
-- approved task applies (removed when the task ends). Timestamps are
-- INTEGER microseconds, as in 0001.
ALTER TABLE tasks ADD COLUMN approval TEXT;
ALTER TABLE tasks ADD COLUMN plan_summary TEXT;

CREATE TABLE plans (
	task_id    TEXT    NOT NULL ON CONFLICT FAIL PRIMARY KEY,
	org        TEXT    NOT NULL ON CONFLICT FAIL,
	summary    TEXT    NOT NULL ON CONFLICT FAIL,
	plan_json  BLOB    NOT NULL ON CONFLICT FAIL,
	plan_text  TEXT    NOT NULL ON CONFLICT FAIL,
	digest     TEXT    NOT NULL ON CONFLICT FAIL,
	created_at INTEGER NOT NULL ON CONFLICT FAIL
);

CREATE TABLE plan_files (
	task_id    TEXT    NOT NULL ON CONFLICT FAIL PRIMARY KEY,
	org        TEXT    NOT NULL ON CONFLICT FAIL,
	digest     TEXT    NOT NULL ON CONFLICT FAIL,
	data       BLOB    NOT NULL ON CONFLICT FAIL,
	created_at INTEGER NOT NULL ON CONFLICT FAIL
);
