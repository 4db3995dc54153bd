-- Credential sets (issue 22): values an org's admin keeps server-side for
-- the tasks that name a set (or that it attaches itself to), and who may
-- use them.
--
-- sealed_env and sealed_variables are the set's env and sensitive
-- variables, each sealed under the org's key by the API server (base64, ''
-- for none): the store never holds a value in plain text, and a PUT may
-- keep one and replace the other. env_names and variable_names name them,
-- so the API shows names without opening anything. agents, workspaces and
-- runners are globs ('{}': any). oidc is the set's workload identity (NULL
-- for none). A put reads and writes the set holding a transaction-scoped
-- advisory lock of its (org, name), so puts of one set are serialised
-- across replicas and a put that keeps values keeps the latest ones.
CREATE TABLE credential_sets (
	org              text COLLATE "C" NOT NULL,
	name             text COLLATE "C" NOT NULL,
	description      text             NOT NULL DEFAULT '',
	sealed_env       text             NOT NULL DEFAULT '',
	env_names        text[]           NOT NULL DEFAULT '{}',
	sealed_variables text             NOT NULL DEFAULT '',
	variable_names   text[]           NOT NULL DEFAULT '{}',
	agents           text[]           NOT NULL DEFAULT '{}',
	workspaces       text[]           NOT NULL DEFAULT '{}',
	runners          text[]           NOT NULL DEFAULT '{}',
	attach           boolean          NOT NULL DEFAULT false,
	oidc             json,
	created_by       text             NOT NULL DEFAULT '',
	created_at       timestamptz      NOT NULL,
	updated_by       text             NOT NULL DEFAULT '',
	updated_at       timestamptz      NOT NULL,
	PRIMARY KEY (org, name)
);
