-- Plan review and approval: each task's review of its plan and its plan's
-- counts (NULL until set; written by transitions only), the plan reviewers
-- read (masked JSON and text) and the sealed binary plan file an approved
-- task applies (removed when the task ends).
ALTER TABLE tasks ADD COLUMN approval json;
ALTER TABLE tasks ADD COLUMN plan_summary json;

CREATE TABLE plans (
	task_id    text COLLATE "C" NOT NULL PRIMARY KEY,
	org        text COLLATE "C" NOT NULL,
	summary    json             NOT NULL,
	plan_json  bytea            NOT NULL,
	plan_text  text             NOT NULL,
	digest     text             NOT NULL,
	created_at timestamptz      NOT NULL
);

CREATE TABLE plan_files (
	task_id    text COLLATE "C" NOT NULL PRIMARY KEY,
	org        text COLLATE "C" NOT NULL,
	digest     text             NOT NULL,
	data       bytea            NOT NULL,
	created_at timestamptz      NOT NULL
);
