-- Events, webhooks and the webhook delivery log (package events).
-- Timestamps are INTEGER microseconds, as in 0001.

-- Events, in insertion order: seq is the cursor of an org's event stream
-- (one writer at a time, so seq order is commit order). id is derived from
-- the task and its transition, so a retried record stores nothing twice.
-- body is the event's JSON as delivered.
CREATE TABLE events (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	id          TEXT    NOT NULL ON CONFLICT FAIL UNIQUE,
	org         TEXT    NOT NULL ON CONFLICT FAIL,
	task_id     TEXT    NOT NULL ON CONFLICT FAIL,
	agent_id    TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	runner_id   TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	type        TEXT    NOT NULL ON CONFLICT FAIL,
	occurred_at INTEGER NOT NULL ON CONFLICT FAIL,
	body        TEXT    NOT NULL ON CONFLICT FAIL
);

-- A stream walks an org's events from its cursor; the filter columns ride
-- along, so filters are checked in the index.
CREATE INDEX events_org ON events (org, seq, type, agent_id, runner_id);
CREATE INDEX events_task ON events (task_id, seq);

-- Webhooks. events is a JSON array of event types ('[]': all); secret is
-- the signing secret, sealed by the server.
CREATE TABLE webhooks (
	id         TEXT    NOT NULL ON CONFLICT FAIL PRIMARY KEY,
	org        TEXT    NOT NULL ON CONFLICT FAIL,
	url        TEXT    NOT NULL ON CONFLICT FAIL,
	events     TEXT    NOT NULL ON CONFLICT FAIL,
	agent_id   TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	runner_id  TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	secret     BLOB    NOT NULL ON CONFLICT FAIL,
	created_at INTEGER NOT NULL ON CONFLICT FAIL,
	created_by TEXT    NOT NULL ON CONFLICT FAIL DEFAULT ''
);

CREATE INDEX webhooks_org ON webhooks (org, created_at, id);

-- Delivery attempts: one row per attempt of one event to one target (a
-- webhook's ID, or 'notify' for a task's own callback). attempt is
-- Temporal's count within one delivery workflow run.
CREATE TABLE deliveries (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	org         TEXT    NOT NULL ON CONFLICT FAIL,
	event_id    TEXT    NOT NULL ON CONFLICT FAIL,
	event_type  TEXT    NOT NULL ON CONFLICT FAIL,
	task_id     TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	target      TEXT    NOT NULL ON CONFLICT FAIL,
	attempt     INTEGER NOT NULL ON CONFLICT FAIL,
	status_code INTEGER NOT NULL ON CONFLICT FAIL DEFAULT 0,
	latency_us  INTEGER NOT NULL ON CONFLICT FAIL DEFAULT 0,
	error       TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	succeeded   INTEGER NOT NULL ON CONFLICT FAIL DEFAULT 0,
	at          INTEGER NOT NULL ON CONFLICT FAIL
);

CREATE INDEX deliveries_target ON deliveries (org, target, id);
CREATE INDEX deliveries_event ON deliveries (event_id, target);
