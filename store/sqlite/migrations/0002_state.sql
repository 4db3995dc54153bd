-- Terraform state per (org, workspace), served by the HTTP state backend:
-- every accepted version (data as the server wrote it, sealed) and the
-- workspace's lock. Timestamps are INTEGER microseconds, as in 0001.

CREATE TABLE state_versions (
	org        TEXT    NOT NULL ON CONFLICT FAIL,
	workspace  TEXT    NOT NULL ON CONFLICT FAIL,
	version    INTEGER NOT NULL ON CONFLICT FAIL,
	serial     INTEGER NOT NULL ON CONFLICT FAIL,
	lineage    TEXT    NOT NULL ON CONFLICT FAIL,
	md5        TEXT    NOT NULL ON CONFLICT FAIL,
	size       INTEGER NOT NULL ON CONFLICT FAIL,
	task_id    TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	created_at INTEGER NOT NULL ON CONFLICT FAIL,
	data       BLOB    NOT NULL ON CONFLICT FAIL,
	PRIMARY KEY (org, workspace, version)
);

CREATE TABLE state_locks (
	org        TEXT    NOT NULL ON CONFLICT FAIL,
	workspace  TEXT    NOT NULL ON CONFLICT FAIL,
	lock_id    TEXT    NOT NULL ON CONFLICT FAIL,
	task_id    TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	info       BLOB    NOT NULL ON CONFLICT FAIL,
	created_at INTEGER NOT NULL ON CONFLICT FAIL,
	PRIMARY KEY (org, workspace)
);
