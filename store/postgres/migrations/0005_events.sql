-- Events, webhooks and the webhook delivery log (package events).

-- Events, in insertion order: seq is the cursor of an org's event stream.
-- Writers of one org's events hold a transaction-scoped advisory lock on the
-- org while they insert, so an org's seq values commit in increasing order
-- and a reader following with seq > cursor never skips one. id is derived
-- from the task and its transition, so a retried record stores nothing
-- twice. body is the event's JSON as delivered.
CREATE TABLE events (
	seq         bigint GENERATED ALWAYS AS IDENTITY NOT NULL PRIMARY KEY,
	id          text COLLATE "C" NOT NULL UNIQUE,
	org         text COLLATE "C" NOT NULL,
	task_id     text COLLATE "C" NOT NULL,
	agent_id    text COLLATE "C" NOT NULL DEFAULT '',
	runner_id   text COLLATE "C" NOT NULL DEFAULT '',
	type        text COLLATE "C" NOT NULL,
	occurred_at timestamptz      NOT NULL,
	body        json             NOT NULL
);

-- A stream walks an org's events from its cursor; the filter columns ride
-- along, so filters are checked in the index.
CREATE INDEX events_org ON events (org, seq, type, agent_id, runner_id);
CREATE INDEX events_task ON events (task_id, seq);

-- Webhooks. events lists event types (empty: all); secret is the signing
-- secret, sealed by the server.
CREATE TABLE webhooks (
	id         text COLLATE "C" NOT NULL PRIMARY KEY,
	org        text COLLATE "C" NOT NULL,
	url        text             NOT NULL,
	events     text[]           NOT NULL,
	agent_id   text COLLATE "C" NOT NULL DEFAULT '',
	runner_id  text COLLATE "C" NOT NULL DEFAULT '',
	secret     bytea            NOT NULL,
	created_at timestamptz      NOT NULL,
	created_by text             NOT NULL DEFAULT ''
);

CREATE INDEX webhooks_org ON webhooks (org, created_at, id);

-- Delivery attempts: one row per attempt of one event to one target (a
-- webhook's ID, or 'notify' for a task's own callback). attempt is
-- Temporal's count within one delivery workflow run.
CREATE TABLE deliveries (
	id          bigint GENERATED ALWAYS AS IDENTITY NOT NULL PRIMARY KEY,
	org         text COLLATE "C" NOT NULL,
	event_id    text COLLATE "C" NOT NULL,
	event_type  text COLLATE "C" NOT NULL,
	task_id     text COLLATE "C" NOT NULL DEFAULT '',
	target      text COLLATE "C" NOT NULL,
	attempt     integer          NOT NULL,
	status_code integer          NOT NULL DEFAULT 0,
	latency_us  bigint           NOT NULL DEFAULT 0,
	error       text             NOT NULL DEFAULT '',
	succeeded   boolean          NOT NULL DEFAULT false,
	at          timestamptz      NOT NULL
);

CREATE INDEX deliveries_target ON deliveries (org, target, id);
CREATE INDEX deliveries_event ON deliveries (event_id, target);
