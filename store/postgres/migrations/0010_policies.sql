-- Policy as code (issue 21): every version of each org's Rego policies, each
-- task's latest policy check and the input of its post_plan check.
--
-- A policy's versions are numbered from 1 per (org, name) and never
-- rewritten: a change is a new version and a deletion too (deleted, with
-- no rego or sha256), so the numbers of a name never repeat and a task's
-- check names exactly what it evaluated. A put reads the latest version
-- and writes the next holding a transaction-scoped advisory lock of the
-- (org, name), so puts of one name are serialised across replicas.
CREATE TABLE policies (
	org         text COLLATE "C" NOT NULL,
	name        text COLLATE "C" NOT NULL,
	version     integer          NOT NULL,
	rego        text             NOT NULL DEFAULT '',
	description text             NOT NULL DEFAULT '',
	sha256      text             NOT NULL DEFAULT '',
	source      text             NOT NULL DEFAULT '',
	deleted     boolean          NOT NULL DEFAULT false,
	created_by  text             NOT NULL DEFAULT '',
	created_at  timestamptz      NOT NULL,
	PRIMARY KEY (org, name, version)
);

-- The task's latest policy check (NULL until set; written by transitions
-- only), like approval and plan_summary (0004).
ALTER TABLE tasks ADD COLUMN policy json;

-- Terraform's whole JSON plan, masked and sealed with the org's key: the
-- input of the task's post_plan check (empty when the org had no
-- policies). Only the check reads it, so the plan route's reads leave it
-- out.
ALTER TABLE plans ADD COLUMN policy_input bytea NOT NULL DEFAULT ''::bytea;
