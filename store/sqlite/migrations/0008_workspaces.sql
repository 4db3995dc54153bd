-- Workspaces per org and the agents that may use them (issue 20, item 4).
--
-- agents is a JSON array of agent IDs: the owner (the agent of the first
-- task created on the workspace) first, then the agents it was granted to;
-- '[]' is unowned (the next agent's task claims it). latest_task_id is the
-- task of the latest claim ('' for none), latest_task_at its creation time
-- (0 for none).
CREATE TABLE workspaces (
	org            TEXT    NOT NULL ON CONFLICT FAIL,
	name           TEXT    NOT NULL ON CONFLICT FAIL,
	agents         TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '[]',
	created_at     INTEGER NOT NULL ON CONFLICT FAIL,
	created_by     TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	updated_at     INTEGER NOT NULL ON CONFLICT FAIL,
	updated_by     TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	latest_task_id TEXT    NOT NULL ON CONFLICT FAIL DEFAULT '',
	latest_task_at INTEGER NOT NULL ON CONFLICT FAIL DEFAULT 0,
	PRIMARY KEY (org, name)
) WITHOUT ROWID;

-- Workspaces used before this migration: the task index does not record a
-- task's workspace (it is a parameter, in Temporal), but the state does
-- record which task wrote each version. Each workspace with a state version
-- or lock gets a row whose agents are the agents of the tasks that wrote its
-- versions, in the order of their first version: the earliest writer owns
-- it, the others keep using it as granted agents. A workspace whose versions
-- were all written by keys, or by tasks the index no longer holds, is
-- unowned. Workspaces without state get their row from their next task.
INSERT INTO workspaces (org, name, agents, created_at, created_by, updated_at, updated_by)
SELECT s.org, s.workspace,
	(SELECT json_group_array(w.agent_id ORDER BY w.first, w.agent_id) FROM (
		SELECT t.agent_id AS agent_id, min(v.version) AS first
		FROM state_versions v JOIN tasks t ON t.id = v.task_id AND t.org = v.org
		WHERE v.org = s.org AND v.workspace = s.workspace AND t.agent_id <> ''
		GROUP BY t.agent_id) w),
	min(s.created_at), '', min(s.created_at), ''
FROM (SELECT org, workspace, created_at FROM state_versions
	UNION ALL SELECT org, workspace, created_at FROM state_locks) s
GROUP BY s.org, s.workspace;
