-- Credential sets (issue 22): values an org's admin keeps server-side for
-- the tasks that name a set (or that it attaches itself to), and who may
-- use them.
--
-- sealed_env and sealed_variables are the set's env and sensitive
-- variables, each sealed under the org's key by the API server (base64, ''
-- for none): the store never holds a value in plain text, and a PUT may
-- keep one and replace the other. env_names and variable_names name them
-- (JSON arrays), so the API shows names without opening anything. agents,
-- workspaces and runners are JSON arrays of globs ('[]': any). oidc is the
-- set's workload identity (JSON, NULL for none). Timestamps are INTEGER
-- microseconds, as in 0001.
CREATE TABLE credential_sets (
	org              TEXT    NOT NULL ON CONFLICT FAIL,
	name             TEXT    NOT NULL ON CONFLICT FAIL,
	description      TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	sealed_env       TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	env_names        TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '[]',
	sealed_variables TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	variable_names   TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '[]',
	agents           TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '[]',
	workspaces       TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '[]',
	runners          TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '[]',
	attach           INTEGER NOT NULL ON CONFLICT FAIL DEFAULT 0,
	oidc             TEXT,
	created_by       TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	created_at       INTEGER NOT NULL ON CONFLICT FAIL,
	updated_by       TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	updated_at       INTEGER NOT NULL ON CONFLICT FAIL,
	PRIMARY KEY (org, name)
);
