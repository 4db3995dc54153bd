-- Terraform state per (org, workspace), served by the HTTP state backend:
-- every accepted version (data as the server wrote it, sealed) and the
-- workspace's lock. Every state operation on a workspace takes a
-- transaction-scoped advisory lock on it first, so they are serialised
-- across replicas.

CREATE TABLE state_versions (
	org        text COLLATE "C" NOT NULL,
	workspace  text COLLATE "C" NOT NULL,
	version    bigint           NOT NULL,
	serial     bigint           NOT NULL,
	lineage    text             NOT NULL,
	md5        text             NOT NULL,
	size       bigint           NOT NULL,
	task_id    text             NOT NULL DEFAULT '',
	created_at timestamptz      NOT NULL,
	data       bytea            NOT NULL,
	PRIMARY KEY (org, workspace, version)
);

CREATE TABLE state_locks (
	org        text COLLATE "C" NOT NULL,
	workspace  text COLLATE "C" NOT NULL,
	lock_id    text             NOT NULL,
	task_id    text             NOT NULL DEFAULT '',
	info       bytea            NOT NULL,
	created_at timestamptz      NOT NULL,
	PRIMARY KEY (org, workspace)
);
