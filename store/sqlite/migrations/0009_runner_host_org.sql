-- Runner IDs are per org (issue 20): a runner host's row is keyed by its
-- org too, so one org's runners never show another's hosts or engines. The
-- rows are refreshed by the running hosts every minute: the table is made
-- anew rather than copied (a host of before this version names no org).
DROP TABLE runner_hosts;
CREATE TABLE runner_hosts (
	org        TEXT    NOT NULL ON CONFLICT FAIL,
	runner_id  TEXT    NOT NULL ON CONFLICT FAIL,
	host_id    TEXT    NOT NULL ON CONFLICT FAIL,
	identity   TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	engines    TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '[]',
	started_at INTEGER NOT NULL ON CONFLICT FAIL,
	updated_at INTEGER NOT NULL ON CONFLICT FAIL,
	PRIMARY KEY (org, runner_id, host_id)
) WITHOUT ROWID;
