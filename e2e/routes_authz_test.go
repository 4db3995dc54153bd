package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The route matrix: every operation of the OpenAPI document has a row here
// (TestRouteAuthMatrix fails for an operation without one, and for a row
// naming an operation the document lacks), and each row says what each
// caller gets from one `terratask dev`: the roles of org A, a key of org A
// bound to agent-x on agent-x's things and on agent-y's, org B's admin on
// org A's things, no key and a wrong key.

// caller is a column of the matrix.
type caller int

const (
	viewerA    caller = iota // viewer of org A
	operatorA                // operator of org A
	adminA                   // admin of org A
	agentOwn                 // operator of org A bound to agent-x, on agent-x's things
	agentOther               // the same key, on agent-y's things
	adminB                   // admin of org B, on org A's things
	noKey                    // no Authorization header
	wrongKey                 // a key the server does not know
	numCallers
)

var callerNames = [numCallers]string{"viewer", "operator", "admin", "agent-bound, own agent", "agent-bound, other agent",
	"other org's admin", "no key", "wrong key"}

// Outcomes of a cell besides a status code.
const (
	// unchecked: not asserted (the row's why says why).
	unchecked = 0
	// allowed: any answer past the key and role checks: not a 401, 403,
	// 404, 429 or 5xx (the row's why says why not one code).
	allowed = -1
	// listsAll, listsOwn and listsNone: 200, listing both the agent-x and
	// the agent-y fixture the row names, only agent-x's, or neither.
	listsAll  = -2
	listsOwn  = -3
	listsNone = -4
)

// row is a row of the matrix.
type row struct {
	op   string // "METHOD /path" as the OpenAPI document has it
	want [numCallers]int
	why  string // why cells are unchecked or only allowed
	// call sends the request of one cell.
	call func(t *testing.T, m *matrix, c cell) reply
	// listed names the agent-x and agent-y fixtures a list row looks for
	// ("" for none).
	listed func(m *matrix) (x, y string)
}

// cells is a row's outcomes, one per caller in column order.
func cells(viewer, operator, admin, own, other, orgB, none, wrong int) [numCallers]int {
	return [numCallers]int{viewer, operator, admin, own, other, orgB, none, wrong}
}

// cell is one request of the matrix.
type cell struct {
	who caller
	key string
	fx  *agentFixtures // agent-x's, or agent-y's for agentOther
	// succeeds: the cell expects the request to do what it asks, so a row
	// whose request changes or ends its fixture acts on a fresh one.
	succeeds bool
	client   *http.Client
}

// agentFixtures are the things of org A of one agent.
type agentFixtures struct {
	agent     string
	parked    string // a task waiting for a runner nobody serves
	waiting   string // a task waiting for approval of its plan
	schedule  string // a paused schedule
	workspace string // a workspace with state version 1
}

// matrix is the dev the rows run on, its keys and fixtures.
type matrix struct {
	dev     *devProc
	keys    [numCallers]string
	x, y    *agentFixtures
	hook    string // a webhook of org A
	hookURL string
	// approvable are tasks of agent-x waiting for approval, for the cells
	// whose approve or reject succeeds.
	approvable chan string
	mu         sync.Mutex
	n          int
}

// matrixKeys are the keys file of the matrix's dev.
var matrixKeys = []principal{
	{"mx-viewer-a", "raw-mx-viewer-a-5c2e", "default", "viewer", ""},
	{"mx-operator-a", "raw-mx-operator-a-8b1d", "default", "operator", ""},
	{"mx-admin-a", "raw-mx-admin-a-3f7a", "default", "admin", ""},
	{"mx-bot-x", "raw-mx-bot-x-6e4c", "default", "operator", "agent-x"},
	{"mx-admin-b", "raw-mx-admin-b-1a9f", "other", "admin", ""},
}

// routeMatrix is the matrix's rows.
var routeMatrix = []row{
	// Public routes: no key needed, a wrong one ignored.
	{op: "GET /healthz", want: cells(200, 200, 200, 200, 200, 200, 200, 200), call: get("/healthz")},
	{op: "GET /readyz", want: cells(200, 200, 200, 200, 200, 200, 200, 200), call: get("/readyz")},
	{op: "GET /api/v1/openapi.json", want: cells(200, 200, 200, 200, 200, 200, 200, 200), call: get("/api/v1/openapi.json")},
	{op: "GET /metrics", want: cells(200, 200, 200, 200, 200, 200, 200, 200), call: get("/metrics")},
	// The OIDC issuer's documents are public too, but the matrix's dev has
	// no --oidc-issuer: 404 for everyone, key or not (server's
	// TestOIDCWellKnownAndRunnerToken serves them with an issuer).
	{op: "GET /.well-known/openid-configuration", want: cells(404, 404, 404, 404, 404, 404, 404, 404), call: get("/.well-known/openid-configuration"),
		why: "public, and 404 without --oidc-issuer whatever the key"},
	{op: "GET /.well-known/jwks.json", want: cells(404, 404, 404, 404, 404, 404, 404, 404), call: get("/.well-known/jwks.json"),
		why: "public, and 404 without --oidc-issuer whatever the key"},

	// Tasks: another org's are a 404, never a 403; so are another agent's
	// for an agent-bound key.
	{op: "GET /api/v1/tasks", want: cells(listsAll, listsAll, listsAll, listsOwn, listsOwn, listsNone, 401, 401),
		call: get("/api/v1/tasks?limit=1000"), listed: parked},
	{op: "POST /api/v1/tasks", want: cells(403, 200, 200, 200, 403, 200, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			return m.send(t, c, http.MethodPost, "/api/v1/tasks", parkedBody("matrix create", c.fx.agent))
		}},
	{op: "GET /api/v1/tasks/{taskId}", want: cells(200, 200, 200, 200, 404, 404, 401, 401), call: onTask("", parkedTask)},
	{op: "GET /api/v1/tasks/{taskId}/status", want: cells(200, 200, 200, 200, 404, 404, 401, 401), call: onTask("/status", parkedTask)},
	{op: "GET /api/v1/tasks/{taskId}/logs", want: cells(200, 200, 200, 200, 404, 404, 401, 401), call: onTask("/logs", parkedTask)},
	{op: "GET /api/v1/tasks/{taskId}/plan", want: cells(200, 200, 200, 200, 404, 404, 401, 401), call: onTask("/plan", waitingTask)},
	{op: "PUT /api/v1/tasks/{taskId}/cancel", want: cells(403, 200, 200, 200, 404, 404, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			id := c.fx.parked
			if c.succeeds {
				id = m.parkedTask(t, c.fx.agent, "")
			}
			return m.send(t, c, http.MethodPut, "/api/v1/tasks/"+id+"/cancel", nil)
		}},
	// Deciding: operators and admins, never an agent-bound key (four eyes
	// is TestPlanReview's).
	{op: "PUT /api/v1/tasks/{taskId}/approve", want: cells(403, 200, 200, 403, 404, 404, 401, 401), call: decideCell("approve")},
	{op: "PUT /api/v1/tasks/{taskId}/reject", want: cells(403, 200, 200, 403, 404, 404, 401, 401), call: decideCell("reject")},
	// The agent route of another agent is an empty list for an
	// agent-bound key, as its filter is.
	{op: "GET /api/v1/tasks/agent/{agentId}", want: cells(listsOwn, listsOwn, listsOwn, listsOwn, listsNone, listsNone, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			return m.send(t, c, http.MethodGet, "/api/v1/tasks/agent/"+c.fx.agent+"?limit=1000", nil)
		}, listed: parked},
	{op: "GET /api/v1/tasks/runner/{runnerId}", want: cells(listsAll, listsAll, listsAll, listsOwn, listsOwn, listsNone, 401, 401),
		call: get("/api/v1/tasks/runner/nobody-serves-this?limit=1000"), listed: parked},

	// Schedules: as tasks, by their template's agent.
	{op: "GET /api/v1/schedules", want: cells(listsAll, listsAll, listsAll, listsOwn, listsOwn, listsNone, 401, 401),
		call: get("/api/v1/schedules?limit=1000"), listed: func(m *matrix) (string, string) { return m.x.schedule, m.y.schedule }},
	{op: "POST /api/v1/schedules", want: cells(403, 200, 200, 200, 403, 200, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			return m.send(t, c, http.MethodPost, "/api/v1/schedules", matrixSchedule(c.fx.agent))
		}},
	{op: "GET /api/v1/schedules/{scheduleId}", want: cells(200, 200, 200, 200, 404, 404, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			return m.send(t, c, http.MethodGet, "/api/v1/schedules/"+c.fx.schedule, nil)
		}},
	{op: "PATCH /api/v1/schedules/{scheduleId}", want: cells(403, 200, 200, 200, 404, 404, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			return m.send(t, c, http.MethodPatch, "/api/v1/schedules/"+c.fx.schedule, []byte(`{"paused":true,"jitter":"1s"}`))
		}},
	{op: "DELETE /api/v1/schedules/{scheduleId}", want: cells(403, 200, 200, 200, 404, 404, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			id := c.fx.schedule
			if c.succeeds {
				id = m.schedule(t, c.fx.agent)
			}
			return m.send(t, c, http.MethodDelete, "/api/v1/schedules/"+id, nil)
		}},
	{op: "POST /api/v1/schedules/{scheduleId}/trigger", want: cells(403, 200, 200, 200, 404, 404, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			return m.send(t, c, http.MethodPost, "/api/v1/schedules/"+c.fx.schedule+"/trigger", nil)
		}},

	// Events: the org's, an agent-bound key's agent's only.
	{op: "GET /api/v1/events", want: cells(listsAll, listsAll, listsAll, listsOwn, listsNone, listsNone, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			path := "/api/v1/events?limit=1000"
			if c.who == agentOther {
				path += "&agent=" + c.fx.agent
			}
			return m.send(t, c, http.MethodGet, path, nil)
		}, listed: parked},

	// Webhooks: admin keys bound to no agent (a webhook sees every
	// agent's events); another org's webhook is a 404.
	{op: "GET /api/v1/webhooks", want: cells(403, 403, listsOwn, 403, 403, listsNone, 401, 401),
		call: get("/api/v1/webhooks"), listed: func(m *matrix) (string, string) { return m.hook, "" }},
	{op: "POST /api/v1/webhooks", want: cells(403, 403, 200, 403, 403, 200, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			return m.send(t, c, http.MethodPost, "/api/v1/webhooks", m.hookBody())
		}},
	{op: "GET /api/v1/webhooks/signing-secret", want: cells(403, 403, 200, 403, 403, 200, 401, 401), call: get("/api/v1/webhooks/signing-secret")},
	{op: "GET /api/v1/webhooks/{webhookId}", want: cells(403, 403, 200, 403, 403, 404, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			return m.send(t, c, http.MethodGet, "/api/v1/webhooks/"+m.hook, nil)
		}},
	{op: "DELETE /api/v1/webhooks/{webhookId}", want: cells(403, 403, 200, 403, 403, 404, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			id := m.hook
			if c.succeeds {
				id = m.webhook(t)
			}
			return m.send(t, c, http.MethodDelete, "/api/v1/webhooks/"+id, nil)
		}},
	{op: "GET /api/v1/webhooks/{webhookId}/deliveries", want: cells(403, 403, 200, 403, 403, 404, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			return m.send(t, c, http.MethodGet, "/api/v1/webhooks/"+m.hook+"/deliveries", nil)
		}},

	// Workspaces: a key bound to an agent sees its agent's; only unbound
	// operators and admins grant them. Org B's admin granting a workspace
	// of the same name grants one of org B.
	{op: "GET /api/v1/workspaces", want: cells(listsAll, listsAll, listsAll, listsOwn, listsOwn, listsNone, 401, 401),
		call: get("/api/v1/workspaces?limit=1000"), listed: func(m *matrix) (string, string) { return m.x.workspace, m.y.workspace }},
	{op: "GET /api/v1/workspaces/{workspace}", want: cells(200, 200, 200, 200, 404, 404, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			return m.send(t, c, http.MethodGet, "/api/v1/workspaces/"+c.fx.workspace, nil)
		}},
	{op: "PUT /api/v1/workspaces/{workspace}", want: cells(403, 200, 200, 403, 403, 200, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			// The agents it has: a grant that changes nothing.
			return m.send(t, c, http.MethodPut, "/api/v1/workspaces/"+c.fx.workspace, []byte(`{"agents":["`+c.fx.agent+`"]}`))
		}},

	// The state backend: documents and their writes are the admin's; the
	// lock and the version list any role's; a key bound to an agent
	// reaches only its agent's workspaces (404). Another org's key gets a
	// 403, not a 404: Terraform reads a 404 as "no state yet", and the
	// answer is the same whether the workspace exists or not.
	{op: "GET /api/v1/state/{org}/{workspace}", want: cells(403, 403, 200, 403, 404, 403, 401, 401), call: onState(http.MethodGet, "", false, nil)},
	{op: "POST /api/v1/state/{org}/{workspace}", want: cells(403, 403, 200, 403, 404, 403, 401, 401), call: onState(http.MethodPost, "", true, stateDoc)},
	{op: "GET /api/v1/state/{org}/{workspace}/lock", want: cells(200, 200, 200, 200, 404, 403, 401, 401), call: onState(http.MethodGet, "/lock", false, nil)},
	{op: "POST /api/v1/state/{org}/{workspace}/lock", want: cells(403, 403, 200, 403, 404, 403, 401, 401), call: onState(http.MethodPost, "/lock", true, lockInfo)},
	{op: "DELETE /api/v1/state/{org}/{workspace}/lock", want: cells(403, 403, 200, 403, 404, 403, 401, 401), call: onState(http.MethodDelete, "/lock?force=true", false, nil)},
	{op: "GET /api/v1/state/{org}/{workspace}/versions", want: cells(200, 200, 200, 200, 404, 403, 401, 401), call: onState(http.MethodGet, "/versions", false, nil)},
	{op: "GET /api/v1/state/{org}/{workspace}/versions/{version}", want: cells(403, 403, 200, 403, 404, 403, 401, 401), call: onState(http.MethodGet, "/versions/1", false, nil)},

	// Policies are the admin's, of its own org: org B's admin lists and
	// writes org B's (its PUT creates org B's own policy), and org A's
	// policy is a 404 for it. A dry run is any key's, an agent-bound key's
	// for its own agent's tasks only (as a create).
	{op: "GET /api/v1/policies", want: cells(403, 403, 200, 403, 403, 200, 401, 401), call: get("/api/v1/policies")},
	{op: "POST /api/v1/policies/evaluate", want: cells(200, 200, 200, 200, 403, 200, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			body := `{"stage":"pre_plan","task":` + string(parkedBody("matrix dry run", c.fx.agent)) + `}`
			return m.send(t, c, http.MethodPost, "/api/v1/policies/evaluate", []byte(body))
		}},
	{op: "GET /api/v1/policies/{name}", want: cells(403, 403, 200, 403, 403, 404, 401, 401), call: get("/api/v1/policies/" + matrixPolicyKept)},
	{op: "GET /api/v1/policies/{name}/versions", want: cells(403, 403, 200, 403, 403, 404, 401, 401), call: get("/api/v1/policies/" + matrixPolicyKept + "/versions")},
	{op: "PUT /api/v1/policies/{name}", want: cells(403, 403, allowed, 403, 403, allowed, 401, 401),
		why: "admins write a new version (200) or the first (201, org B's own policy)",
		call: func(t *testing.T, m *matrix, c cell) reply {
			return m.send(t, c, http.MethodPut, "/api/v1/policies/"+matrixPolicy, matrixPolicyBody(m.next()))
		}},
	{op: "DELETE /api/v1/policies/{name}", want: cells(403, 403, 204, 403, 403, 404, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			name := matrixPolicyKept
			if c.succeeds {
				name = fmt.Sprintf("%s-gone-%d", matrixPolicy, m.next())
				if r := m.dev.call(t, http.MethodPut, "/api/v1/policies/"+name, m.keys[adminA], matrixPolicyBody(0)); r.code != http.StatusCreated {
					t.Fatalf("creating a policy to delete: %d %s", r.code, r.body)
				}
			}
			return m.send(t, c, http.MethodDelete, "/api/v1/policies/"+name, nil)
		}},

	// Credential sets are the admin's, of its own org, as policies: org
	// B's admin lists and writes org B's (its PUT creates org B's own set),
	// and org A's set is a 404 for it. No route returns a value.
	{op: "GET /api/v1/credential-sets", want: cells(403, 403, 200, 403, 403, 200, 401, 401), call: get("/api/v1/credential-sets")},
	{op: "GET /api/v1/credential-sets/{name}", want: cells(403, 403, 200, 403, 403, 404, 401, 401), call: get("/api/v1/credential-sets/" + matrixCredentialsKept)},
	{op: "PUT /api/v1/credential-sets/{name}", want: cells(403, 403, allowed, 403, 403, allowed, 401, 401),
		why: "admins replace org A's set (200) or create their own (201, org B's)",
		call: func(t *testing.T, m *matrix, c cell) reply {
			return m.send(t, c, http.MethodPut, "/api/v1/credential-sets/"+matrixCredentials, matrixCredentialsBody)
		}},
	{op: "DELETE /api/v1/credential-sets/{name}", want: cells(403, 403, 204, 403, 403, 404, 401, 401),
		call: func(t *testing.T, m *matrix, c cell) reply {
			name := matrixCredentialsKept
			if c.succeeds {
				name = fmt.Sprintf("%s-gone-%d", matrixCredentials, m.next())
				if r := m.dev.call(t, http.MethodPut, "/api/v1/credential-sets/"+name, m.keys[adminA], matrixCredentialsBody); r.code != http.StatusCreated {
					t.Fatalf("creating a credential set to delete: %d %s", r.code, r.body)
				}
			}
			return m.send(t, c, http.MethodDelete, "/api/v1/credential-sets/"+name, nil)
		}},

	// Runner IDs are per org: org B's key reads its own runner "local"
	// (offline, no hosts), never org A's (e2e/tenancy_test.go checks what
	// each sees). The codec: admin keys bound to no agent, each on its own
	// org's payloads (server/codec_test.go checks what each decodes).
	{op: "GET /api/v1/runners", want: cells(200, 200, 200, 200, 200, 200, 401, 401), call: get("/api/v1/runners")},
	{op: "GET /api/v1/runners/{runnerId}", want: cells(200, 200, 200, 200, 200, 200, 401, 401), call: get("/api/v1/runners/local")},
	{op: "POST /api/v1/codec/encode", want: cells(403, 403, 200, 403, 403, 200, 401, 401), call: codecCell("encode")},
	{op: "POST /api/v1/codec/decode", want: cells(403, 403, 200, 403, 403, 200, 401, 401), call: codecCell("decode")},
	// dev's UI codec session opens with the token of dev's banner only,
	// never with a key (e2e/webui_test.go opens it).
	{op: "GET /api/v1/codec/session", want: cells(401, 401, 401, 401, 401, 401, 401, 401), call: get("/api/v1/codec/session?token=not-the-token")},

	// The runner API takes runner credentials only: every API key is a
	// 401 (server/runnerapi_test.go checks a runner's reach).
	{op: "POST /api/v1/runner/logs", want: cells(401, 401, 401, 401, 401, 401, 401, 401), call: onRunnerAPI(http.MethodPost, "/logs", []byte(`[]`))},
	{op: "PUT /api/v1/runner/plans/{taskId}", want: cells(401, 401, 401, 401, 401, 401, 401, 401), call: onRunnerAPI(http.MethodPut, "/plans/task-x", []byte(`{}`))},
	{op: "PUT /api/v1/runner/plan-files/{taskId}", want: cells(401, 401, 401, 401, 401, 401, 401, 401), call: onRunnerAPI(http.MethodPut, "/plan-files/task-x", []byte(`{}`))},
	{op: "GET /api/v1/runner/plan-files/{taskId}", want: cells(401, 401, 401, 401, 401, 401, 401, 401), call: onRunnerAPI(http.MethodGet, "/plan-files/task-x", nil)},
	{op: "GET /api/v1/runner/tasks/{taskId}", want: cells(401, 401, 401, 401, 401, 401, 401, 401), call: onRunnerAPI(http.MethodGet, "/tasks/task-x", nil)},
	{op: "PUT /api/v1/runner/hosts/{hostId}", want: cells(401, 401, 401, 401, 401, 401, 401, 401), call: onRunnerAPI(http.MethodPut, "/hosts/h", []byte(`{}`))},
	{op: "GET /api/v1/runner/credentials/{taskId}", want: cells(401, 401, 401, 401, 401, 401, 401, 401), call: onRunnerAPI(http.MethodGet, "/credentials/task-x?workspace=w", nil)},
	{op: "POST /api/v1/runner/tokens/{taskId}", want: cells(401, 401, 401, 401, 401, 401, 401, 401), call: onRunnerAPI(http.MethodPost, "/tokens/task-x", []byte(`{"set":"s","phase":"plan","workspace":"w"}`))},
}

// onRunnerAPI is a row's request to the runner API.
func onRunnerAPI(method, suffix string, body []byte) func(*testing.T, *matrix, cell) reply {
	return func(t *testing.T, m *matrix, c cell) reply {
		return m.send(t, c, method, "/api/v1/runner"+suffix, body)
	}
}

// TestRouteAuthMatrix runs routeMatrix against its own `terratask dev`.
func TestRouteAuthMatrix(t *testing.T) {
	t.Parallel()
	rows := matrixRows(t)
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.yaml")
	writeKeysFile(t, keysPath, matrixKeys)
	dev, err := startDev(filepath.Join(dir, "data"), "raw-mx-dev-admin-0c3b", "--api-keys-file", keysPath, "--webhook-allow", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := dev.stop(); err != nil {
			t.Error(err)
		}
	}()
	m := newMatrix(t, dev)
	for i, r := range rows {
		t.Run(r.op, func(t *testing.T) {
			for who := range numCallers {
				c := m.cell(who, r.want[who], i)
				got := r.call(t, m, c)
				m.check(t, r, who, got)
			}
		})
	}
}

// matrixRows checks routeMatrix against the OpenAPI document, every
// operation against a row and every row against an operation, and returns
// the rows the document has.
func matrixRows(t *testing.T) []row {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "server", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	ops := map[string]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				ops[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	byOp := map[string]row{}
	for _, r := range routeMatrix {
		if _, dup := byOp[r.op]; dup {
			t.Errorf("two rows for %s", r.op)
		}
		byOp[r.op] = r
		if !ops[r.op] {
			t.Errorf("the row %q names no operation of server/openapi.json: remove it, or fix its method and path", r.op)
		}
	}
	var missing []string
	for op := range ops {
		if _, ok := byOp[op]; !ok {
			missing = append(missing, op)
		}
	}
	sort.Strings(missing)
	for _, op := range missing {
		t.Errorf("%s has no row in routeMatrix (e2e/routes_authz_test.go): add\n"+
			"\t{op: %q, want: cells(viewer, operator, admin, agent-bound own, agent-bound other, other org's admin, no key, wrong key),\n"+
			"\t\tcall: func(t *testing.T, m *matrix, c cell) reply { return m.send(t, c, method, path, body) }},\n"+
			"with the status code each caller gets (listsAll, listsOwn or listsNone for a list of agent-x's and agent-y's fixtures, named by listed)", op, op)
	}
	out := make([]row, 0, len(routeMatrix))
	for _, r := range routeMatrix {
		if ops[r.op] {
			out = append(out, r)
		}
	}
	return out
}

// matrixPolicy is org A's policy of the matrix: it decides nothing for
// any task (its rule matches no task name).
const matrixPolicy = "mx-policy"

// matrixPolicyKept is org A's policy no row writes: org B's PUT creates
// its own matrixPolicy, so the 404s of org B's reads and delete name this
// one.
const matrixPolicyKept = "mx-policy-kept"

// matrixPolicyBody is a PUT body of the matrix's policy; n makes its text
// differ, so each write is a new version.
func matrixPolicyBody(n int) []byte {
	rego := fmt.Sprintf("package mx\n\n# revision %d\nwarn contains \"matrix\" if input.terratask.task.name == \"no task has this name\"\n", n)
	b, _ := json.Marshal(map[string]string{"rego": rego, "description": "the route matrix's"})
	return b
}

// matrixCredentials is org A's credential set of the matrix: attached to
// nothing and named by no task.
const matrixCredentials = "mx-credentials"

// matrixCredentialsKept is org A's set no row writes: org B's PUT creates
// its own matrixCredentials, so the 404s of org B's read and delete name
// this one.
const matrixCredentialsKept = "mx-credentials-kept"

// matrixCredentialsBody is a PUT body of the matrix's sets.
var matrixCredentialsBody = []byte(`{"description":"the route matrix's","env":{"MX_TOKEN":"mx-value"},"workspaces":["mx-no-task-uses-this"]}`)

// newMatrix creates the fixtures, as org A's admin.
func newMatrix(t *testing.T, dev *devProc) *matrix {
	t.Helper()
	m := &matrix{dev: dev, approvable: make(chan string, 4)}
	m.keys = [numCallers]string{matrixKeys[0].raw, matrixKeys[1].raw, matrixKeys[2].raw, matrixKeys[3].raw, matrixKeys[3].raw,
		matrixKeys[4].raw, "", "raw-mx-nobody-knows-this"}
	rcv := newHookServer(t, hookSecret)
	m.hookURL = rcv.URL
	for _, name := range []string{matrixPolicy, matrixPolicyKept} {
		if r := m.dev.call(t, http.MethodPut, "/api/v1/policies/"+name, m.keys[adminA], matrixPolicyBody(0)); r.code != http.StatusCreated {
			t.Fatalf("creating the matrix's policy %s: %d %s", name, r.code, r.body)
		}
	}
	for _, name := range []string{matrixCredentials, matrixCredentialsKept} {
		if r := m.dev.call(t, http.MethodPut, "/api/v1/credential-sets/"+name, m.keys[adminA], matrixCredentialsBody); r.code != http.StatusCreated {
			t.Fatalf("creating the matrix's credential set %s: %d %s", name, r.code, r.body)
		}
	}
	m.hook = m.webhook(t)
	var waiting []string
	for _, agent := range []string{"agent-x", "agent-y"} {
		// The parked task names the workspace, so it is the agent's.
		fx := &agentFixtures{agent: agent, workspace: "mx-ws-" + agent, schedule: m.schedule(t, agent), waiting: m.waitingTask(t, agent)}
		fx.parked = m.parkedTask(t, agent, fx.workspace)
		m.writeState(t, fx.workspace)
		waiting = append(waiting, fx.waiting)
		if agent == "agent-x" {
			m.x = fx
		} else {
			m.y = fx
		}
	}
	for range cap(m.approvable) {
		id := m.waitingTask(t, "agent-x")
		waiting = append(waiting, id)
		m.approvable <- id
	}
	for _, id := range waiting {
		waitWaiting(t, dev, id)
	}
	// The parked tasks' task.created events, for the events row.
	waitFor(t, time.Minute, "the fixtures' events", func() bool {
		r := m.dev.call(t, http.MethodGet, "/api/v1/events?limit=1000", m.keys[adminA], nil)
		ids := listedIDs(t, r)
		return ids[m.x.parked] && ids[m.y.parked]
	})
	return m
}

// cell makes the cell of who in row i, whose outcome is want.
func (m *matrix) cell(who caller, want, i int) cell {
	c := cell{who: who, key: m.keys[who], fx: m.x, client: http.DefaultClient,
		succeeds: want == allowed || want <= listsAll || (want >= 200 && want < 300)}
	if who == agentOther {
		c.fx = m.y
	}
	if who == wrongKey {
		// Each row's wrong key comes from an address of its own: 20 wrong
		// keys from one address within a minute lock it out (429).
		c.client = fromAddress(net.IPv4(127, 0, 1, byte(i+1)))
	}
	return c
}

// fromAddress is a client whose connections leave from ip.
func fromAddress(ip net.IP) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// check asserts a cell's answer.
func (m *matrix) check(t *testing.T, r row, who caller, got reply) {
	t.Helper()
	want := r.want[who]
	where := fmt.Sprintf("%s as %s", r.op, callerNames[who])
	switch want {
	case unchecked:
	case allowed:
		if got.code == 401 || got.code == 403 || got.code == 404 || got.code == 429 || got.code >= 500 {
			t.Errorf("%s: %d, want an answer past the key and role checks (%s): %s", where, got.code, r.why, got.body)
		}
	case listsAll, listsOwn, listsNone:
		if got.code != 200 {
			t.Errorf("%s: %d, want 200: %s", where, got.code, got.body)
			return
		}
		x, y := r.listed(m)
		ids := listedIDs(t, got)
		if ids[x] != (want != listsNone) || (y != "" && ids[y] != (want == listsAll)) {
			t.Errorf("%s: lists agent-x's %v, agent-y's %v; want %s", where, ids[x], ids[y],
				map[int]string{listsAll: "both", listsOwn: "agent-x's only", listsNone: "neither"}[want])
		}
	default:
		if got.code != want {
			t.Errorf("%s: %d, want %d: %s", where, got.code, want, got.body)
			return
		}
		if code, ok := map[int]string{401: "unauthorized", 403: "forbidden", 404: "not_found"}[want]; ok {
			if c, _, _ := got.errorOf(t); c != code {
				t.Errorf("%s: error code %s, want %s", where, c, code)
			}
		}
	}
}

// listedIDs are the IDs a list answers: each element's (a workspace's
// name), or for events their task's.
func listedIDs(t *testing.T, r reply) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, e := range r.array(t) {
		if tk, ok := e["task"].(map[string]any); ok {
			ids[fmt.Sprint(tk["id"])] = true
		} else if name, ok := e["name"].(string); ok && e["id"] == nil {
			ids[name] = true
		} else {
			ids[fmt.Sprint(e["id"])] = true
		}
	}
	return ids
}

// send sends a cell's request.
func (m *matrix) send(t *testing.T, c cell, method, path string, body []byte) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, m.dev.api+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "UserKey "+c.key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{code: resp.StatusCode, header: resp.Header, body: b}
}

// admin sends a request as org A's admin, which must succeed.
func (m *matrix) admin(t *testing.T, method, path string, body []byte) map[string]any {
	t.Helper()
	r := m.dev.call(t, method, path, m.keys[adminA], body)
	if r.code != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, r.code, r.body)
	}
	return r.object(t)
}

func (m *matrix) next() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	return m.n
}

// parkedTask creates a task of agent that waits for a runner nobody
// serves, on workspace ws ("" for none).
func (m *matrix) parkedTask(t *testing.T, agent, ws string) string {
	body := map[string]any{"name": "matrix parked", "agent_id": agent, "runner_id": "nobody-serves-this"}
	if ws != "" {
		body["parameters"] = map[string]any{"workspace": ws}
	}
	b, _ := json.Marshal(body)
	return m.admin(t, http.MethodPost, "/api/v1/tasks", b)["id"].(string)
}

// waitingTask creates a task of agent that waits for approval of its plan,
// on a workspace of its own.
func (m *matrix) waitingTask(t *testing.T, agent string) string {
	body := reviewBody(t, "matrix waiting", fmt.Sprintf("mx-wait-%d", m.next()), 1, map[string]any{"approval": "required"})
	body["agent_id"] = agent
	b, _ := json.Marshal(body)
	return m.admin(t, http.MethodPost, "/api/v1/tasks", b)["id"].(string)
}

func (m *matrix) schedule(t *testing.T, agent string) string {
	return m.admin(t, http.MethodPost, "/api/v1/schedules", matrixSchedule(agent))["id"].(string)
}

func (m *matrix) hookBody() []byte {
	b, _ := json.Marshal(map[string]any{"url": m.hookURL, "secret": hookSecret})
	return b
}

func (m *matrix) webhook(t *testing.T) string {
	return m.admin(t, http.MethodPost, "/api/v1/webhooks", m.hookBody())["id"].(string)
}

// writeState writes version 1 of a workspace's state.
func (m *matrix) writeState(t *testing.T, ws string) {
	m.admin(t, http.MethodPost, "/api/v1/state/default/"+ws, stateDoc)
}

// matrixSchedule is a paused schedule whose template parks its tasks.
func matrixSchedule(agent string) []byte {
	b, _ := json.Marshal(map[string]any{"name": "matrix", "cron": "@yearly", "paused": true,
		"template": map[string]any{"name": "matrix scheduled", "agent_id": agent, "runner_id": "nobody-serves-this"}})
	return b
}

var (
	stateDoc = []byte(`{"version":4,"terraform_version":"1.11.4","serial":1,"lineage":"matrix","outputs":{},"resources":[]}`)
	lockInfo = []byte(`{"ID":"matrix-lock","Operation":"OperationTypeApply","Who":"e2e"}`)
)

// get is a row's call of a fixed path.
func get(path string) func(*testing.T, *matrix, cell) reply {
	return func(t *testing.T, m *matrix, c cell) reply { return m.send(t, c, http.MethodGet, path, nil) }
}

// parked names the parked tasks, for list rows.
func parked(m *matrix) (string, string) { return m.x.parked, m.y.parked }

func parkedTask(fx *agentFixtures) string  { return fx.parked }
func waitingTask(fx *agentFixtures) string { return fx.waiting }

// onTask is a row's GET of a task route of the cell's agent's task.
func onTask(suffix string, id func(*agentFixtures) string) func(*testing.T, *matrix, cell) reply {
	return func(t *testing.T, m *matrix, c cell) reply {
		return m.send(t, c, http.MethodGet, "/api/v1/tasks/"+id(c.fx)+suffix, nil)
	}
}

// decideCell approves or rejects the agent's waiting task; a cell that
// succeeds decides a task of its own.
func decideCell(verb string) func(*testing.T, *matrix, cell) reply {
	return func(t *testing.T, m *matrix, c cell) reply {
		id := c.fx.waiting
		if c.succeeds {
			id = <-m.approvable
		}
		return m.send(t, c, http.MethodPut, "/api/v1/tasks/"+id+"/"+verb, nil)
	}
}

// onState is a row's request to a state route of org A's workspace of the
// cell's agent; a cell that succeeds and changes the workspace (fresh)
// uses a new one.
func onState(method, suffix string, fresh bool, body []byte) func(*testing.T, *matrix, cell) reply {
	return func(t *testing.T, m *matrix, c cell) reply {
		ws := c.fx.workspace
		if fresh && c.succeeds {
			ws = fmt.Sprintf("mx-ws-new-%d", m.next())
		}
		return m.send(t, c, method, "/api/v1/state/default/"+ws+suffix, body)
	}
}

func codecCell(verb string) func(*testing.T, *matrix, cell) reply {
	return func(t *testing.T, m *matrix, c cell) reply {
		return m.send(t, c, http.MethodPost, "/api/v1/codec/"+verb, []byte(`{"payloads":[]}`))
	}
}
