-- Policy as code (issue 21): every version of each org's Rego policies, each
-- task's latest policy check and the input of its post_plan check.
--
-- A policy's versions are numbered from 1 per (org, name) and never
-- rewritten: a change is a new version and a deletion too (deleted = 1,
-- with no rego or sha256), so the numbers of a name never repeat and a
-- task's check names exactly what it evaluated. Not WITHOUT ROWID: a row
-- holds a whole Rego module, far more than such a table's rows should.
-- Timestamps are INTEGER microseconds, as in 0001.
CREATE TABLE policies (
	org         TEXT    NOT NULL ON CONFLICT FAIL,
	name        TEXT    NOT NULL ON CONFLICT FAIL,
	version     INTEGER NOT NULL ON CONFLICT FAIL,
	rego        TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	description TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	sha256      TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	source      TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	deleted     INTEGER NOT NULL ON CONFLICT FAIL DEFAULT 0,
	created_by  TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	created_at  INTEGER NOT NULL ON CONFLICT FAIL,
	PRIMARY KEY (org, name, version)
);

-- The task's latest policy check (JSON of task.PolicyCheck, NULL until
-- set; written by transitions only), like approval and plan_summary (0004).
ALTER TABLE tasks ADD COLUMN policy TEXT;

-- Terraform's whole JSON plan, masked and sealed with the org's key: the
-- input of the task's post_plan check ('' when the org had no policies).
-- Only the check reads it, so the plan route's reads leave it out.
ALTER TABLE plans ADD COLUMN policy_input BLOB NOT NULL ON CONFLICT FAIL DEFAULT x'';
