-- Runner IDs are per org (issue 20): a runner host's row is keyed by its
-- org too, so one org's runners never show another's hosts or engines. The
-- rows are refreshed by the running hosts every minute: the table is made
-- anew rather than copied (a host of before this version names no org).
DROP TABLE runner_hosts;
CREATE TABLE runner_hosts (
	org        text COLLATE "C" NOT NULL,
	runner_id  text COLLATE "C" NOT NULL,
	host_id    text COLLATE "C" NOT NULL,
	identity   text             NOT NULL DEFAULT '',
	engines    json             NOT NULL,
	started_at timestamptz      NOT NULL,
	updated_at timestamptz      NOT NULL,
	PRIMARY KEY (org, runner_id, host_id)
);
