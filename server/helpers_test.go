package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/terratask/terratask/auth"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/secret/master"
	"github.com/terratask/terratask/store"
	"github.com/terratask/terratask/store/sqlite"
	"github.com/terratask/terratask/task"
)

// Test keys: raw key -> keys-file entry.
var testKeys = map[string]auth.Key{
	"k-admin-a":    {Name: "admin-a", Org: "org-a", Role: auth.RoleAdmin},
	"k-operator-a": {Name: "operator-a", Org: "org-a", Role: auth.RoleOperator},
	"k-viewer-a":   {Name: "viewer-a", Org: "org-a", Role: auth.RoleViewer},
	"k-agent-a":    {Name: "agent-a", Org: "org-a", Role: auth.RoleOperator, Agent: "agent-1"},
	"k-admin-b":    {Name: "admin-b", Org: "org-b", Role: auth.RoleAdmin},
}

func testKeyring(t testing.TB) *auth.Keyring {
	t.Helper()
	var keys []auth.Key
	for raw, k := range testKeys {
		k.Hash = auth.HashKey(raw)
		keys = append(keys, k)
	}
	kr, err := auth.NewKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// openStore opens a real SQLite store in a temp dir.
func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// testServer is a Server over a real SQLite store; its Temporal client is
// nil (routes that need none) or a fakeTemporal.
type testServer struct {
	*Server
	store *sqlite.Store
	fake  *fakeTemporal
}

func newTestServer(t testing.TB, withTemporal bool, mod ...func(*Options)) *testServer {
	t.Helper()
	ts := &testServer{store: openStore(t)}
	box, err := master.New(bytes.Repeat([]byte{7}, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Store: ts.store, Keys: testKeyring(t), Secrets: box, IDKey: []byte("test-id-key"),
		QueryTimeout: 200 * time.Millisecond, CancelWait: 200 * time.Millisecond}
	if withTemporal {
		ts.fake = newFakeTemporal()
		opts.Temporal = ts.fake
	}
	for _, m := range mod {
		m(&opts)
	}
	ts.Server = New(opts)
	return ts
}

// addTask stores a task row directly.
func (ts *testServer) addTask(t testing.TB, row store.Task) store.Task {
	t.Helper()
	if row.CreatedAt.IsZero() {
		row.CreatedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if row.UpdatedAt.IsZero() {
		row.UpdatedAt = row.CreatedAt
	}
	if row.Name == "" {
		row.Name = "n"
	}
	if row.Status == "" {
		row.Status = task.StatusCompleted
	}
	if err := ts.store.CreateTask(context.Background(), row); err != nil {
		t.Fatal(err)
	}
	return row
}

// req is one request to the router.
type req struct {
	method, path string
	key          string // raw API key; "" sends no Authorization
	body         string // sent as application/json unless header says otherwise
	header       [][2]string
}

func (ts *testServer) do(t testing.TB, r req) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = bytes.NewBufferString(r.body)
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	if r.key != "" {
		hr.Header.Set("Authorization", "UserKey "+r.key)
	}
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for _, kv := range r.header {
		if kv[0] == "Content-Type" || kv[0] == "Authorization" {
			hr.Header.Del(kv[0])
			if kv[1] == "" {
				continue
			}
		}
		hr.Header.Add(kv[0], kv[1])
	}
	w := httptest.NewRecorder()
	ts.Handler().ServeHTTP(w, hr)
	return w
}

// errBody is the seed's error body.
type errBody struct {
	Error struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	} `json:"error"`
}

// decodeError checks w is the seed's error body with exactly its three
// fields and returns it.
func decodeError(t testing.TB, w *httptest.ResponseRecorder) errBody {
	t.Helper()
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil || len(raw) != 1 || raw["error"] == nil {
		t.Fatalf("%d: not the seed's error body: %s", w.Code, w.Body)
	}
	if len(raw["error"]) != 3 || raw["error"]["code"] == nil || raw["error"]["message"] == nil || raw["error"]["details"] == nil {
		t.Fatalf("%d: error body fields: %s", w.Code, w.Body)
	}
	var e errBody
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Details == nil {
		t.Fatalf("%d: %s: %v", w.Code, w.Body, err)
	}
	if want, ok := errorCodes[e.Error.Code]; !ok || want != w.Code {
		t.Fatalf("status %d with code %q (want status %d): %s", w.Code, e.Error.Code, want, w.Body)
	}
	return e
}

// fakeTemporal stands in for Temporal in unit tests of the paths whose
// Temporal side the end-to-end tests cover for real: it records started
// workflows and answers describe from their memo.
type fakeTemporal struct {
	client.Client
	mu       sync.Mutex
	started  map[string]client.StartWorkflowOptions
	starts   int
	startErr error
	// state, when set, answers every state query; queries counts them.
	state   *task.State
	queries int
}

func newFakeTemporal() *fakeTemporal {
	return &fakeTemporal{started: map[string]client.StartWorkflowOptions{}}
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return nil, f.startErr
	}
	if _, ok := f.started[o.ID]; ok {
		if !o.WorkflowExecutionErrorWhenAlreadyStarted {
			panic("the server must ask for an error on a taken workflow ID")
		}
		return nil, serviceerror.NewWorkflowExecutionAlreadyStarted("already started", "", "run")
	}
	f.started[o.ID] = o
	f.starts++
	return nil, nil
}

func (f *fakeTemporal) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.mu.Lock()
	o, ok := f.started[id]
	f.mu.Unlock()
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	memo := &commonpb.Memo{Fields: map[string]*commonpb.Payload{}}
	for k, v := range o.Memo {
		p, err := converter.GetDefaultDataConverter().ToPayload(v)
		if err != nil {
			return nil, err
		}
		memo.Fields[k] = p
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{
		WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{Execution: &commonpb.WorkflowExecution{WorkflowId: id}, Memo: memo,
			Status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING},
	}, nil
}

func (f *fakeTemporal) SignalWithStartWorkflow(context.Context, string, string, any, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	return nil, nil
}

func (f *fakeTemporal) QueryWorkflow(context.Context, string, string, string, ...any) (converter.EncodedValue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	if f.state == nil {
		return nil, serviceerror.NewNotFound("no live state in unit tests")
	}
	return stateValue{*f.state}, nil
}

// stateValue is a query answer of the fake.
type stateValue struct{ st task.State }

func (v stateValue) HasValue() bool { return true }
func (v stateValue) Get(ptr any) error {
	b, err := json.Marshal(v.st)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, ptr)
}

func (f *fakeTemporal) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	return &client.CheckHealthResponse{}, nil
}

// stateCred is the state credential a runner of org derives: with its org's
// key (a runner holds no other).
func (ts *testServer) stateCred(user, org, ws string) string {
	b, err := ts.opts.Secrets.Org(org)
	if err != nil {
		panic(err)
	}
	return b.StateCredential(user, org, ws)
}
