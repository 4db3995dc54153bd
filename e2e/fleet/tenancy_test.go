package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/terratask/terratask/codec"
)

// adminKeyB is the admin key of org B (org-b) in the tenancy test.
const adminKeyB = "fleet-admin-b-key-8d2f"

// TestTenancyFleet is the tenancy suite (issue 20) on the PostgreSQL fleet
// (the dev probes: e2e/tenancy_test.go): a runner process of org default
// (org A) and one of org-b (org B), both of runner ID "tenancy", each with
// its own org's key and no store (the server's runner API). Each org's
// task runs on its own org's runner; each org sees only its own host of
// the ID; org B's admin cannot read the state org A's task wrote (in a
// workspace of the same name), nor decode org A's workflow payloads.
func TestTenancyFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal cluster node, PostgreSQL and four processes; skipped with -short")
	}
	f := startFleet(t, 1, fleetKey{"fleet-admin-b", "org-b", "admin", adminKeyB})
	apiA := f.replicas[0]
	apiB := &apiClient{base: apiA.base, key: adminKeyB, proc: apiA.proc}
	const id = "tenancy"
	runners := map[string]*proc{} // by org
	hosts := map[string]string{}  // org -> host ID
	for org, keyPath := range map[string]string{"default": f.orgKeyPath, "org-b": f.orgKeyFile(t, "org-b")} {
		p := startProc(t, "runner-"+org, filepath.Join(f.dir, "runner-"+org+".log"), f.env, f.bin,
			"runner", "--org", org, "--id", id, "--temporal-address", f.temporal.address, "--server-url", apiA.base,
			"--secret-key-file", keyPath, "--data-dir", filepath.Join(f.dir, "runner-"+org), "--log-level", "info")
		host, _ := waitLogLine(t, p, "terratask runner ready", 2*time.Minute)["host"].(string)
		if host == "" {
			t.Fatalf("runner of %s reported no host", org)
		}
		runners[org], hosts[org] = p, host
	}
	failf := func(format string, args ...any) {
		t.Helper()
		var b strings.Builder
		for _, p := range []*proc{f.temporal.proc, apiA.proc, runners["default"], runners["org-b"]} {
			b.WriteString(p.tail() + "\n")
		}
		t.Fatalf(format+"\n%s", append(args, b.String())...)
	}

	// One task per org on runner "tenancy", in a workspace of the same
	// name, each with markers of its own.
	markA, markB := "tenancy-fleet-a-"+randomHex(t), "tenancy-fleet-b-"+randomHex(t)
	victim := fixture(t, filepath.Join("..", "..", "testdata", "tenancy-victim")) // e2e/testdata
	body := func(name, word string) map[string]any {
		return map[string]any{"name": name, "agent_id": "agent-fleet", "runner_id": id, "parameters": map[string]any{
			"files": victim, "workspace": "tenancy-ws", "runner_timeout": "2m",
			"variables": map[string]any{"word": word}, "sensitive_variables": map[string]any{"secret_word": word + "-secret"}}}
	}
	tA, err := apiA.create(body("tenancy-a", markA))
	if err != nil {
		failf("org A's create: %v", err)
	}
	tB, err := apiB.create(body("tenancy-b", markB))
	if err != nil {
		failf("org B's create: %v", err)
	}
	for org, tk := range map[string]Task{"default": tA, "org-b": tB} {
		c := map[string]*apiClient{"default": apiA, "org-b": apiB}[org]
		if st := waitTerminal(t, c, tk.ID, 4*time.Minute, failf); st.Status != "completed" {
			logs, _ := c.logs(tk.ID)
			failf("%s's task ended %s\n%s", org, st.Status, messages(logs))
		}
		// Picked up by its own org's runner process, never the other's.
		logs, err := c.logs(tk.ID)
		if err != nil {
			failf("logs: %v", err)
		}
		if last := lastHostOf(logs, id); last != hosts[org] {
			failf("%s's task ran on host %q, want its org's runner %s (hosts %v)", org, last, hosts[org], hosts)
		}
		other := map[string]string{"default": "org-b", "org-b": "default"}[org]
		if strings.Contains(runners[other].output(), tk.ID) {
			failf("%s's task %s appears in the log of %s's runner", org, tk.ID, other)
		}
		// Each org sees its own host of the runner ID, not the other's.
		var v struct {
			Status string `json:"status"`
			Hosts  []struct {
				Identity string `json:"identity"`
			} `json:"hosts"`
		}
		if _, _, err := c.do(http.MethodGet, "/api/v1/runners/"+id, nil, &v); err != nil {
			failf("runner %s as %s: %v", id, org, err)
		}
		if v.Status != "online" || len(v.Hosts) != 1 || !strings.Contains(v.Hosts[0].Identity, "@"+hosts[org]+"/") {
			failf("runner %s as %s: %+v (hosts %v)", id, org, v, hosts)
		}
	}

	// State: org A's of tenancy-ws holds its markers and org B's admin may
	// not read it (403: Terraform takes a 404 for "no state yet"); org B's
	// workspace of that name holds its own only.
	stateOf := func(c *apiClient, org string) (int, []byte) {
		var raw json.RawMessage
		code, _, err := c.do(http.MethodGet, "/api/v1/state/"+org+"/tenancy-ws", nil, &raw)
		if err != nil && code == http.StatusOK {
			failf("state %s: %v", org, err)
		}
		if err != nil {
			return code, []byte(err.Error())
		}
		return code, raw
	}
	if code, doc := stateOf(apiA, "default"); code != http.StatusOK || !bytes.Contains(doc, []byte(markA)) {
		failf("org A's state: %d %.300s", code, doc)
	}
	if code, doc := stateOf(apiB, "default"); code != http.StatusForbidden || bytes.Contains(doc, []byte(markA)) {
		failf("org B's admin reads org A's state: %d %.300s", code, doc)
	}
	if code, doc := stateOf(apiB, "org-b"); code != http.StatusOK || !bytes.Contains(doc, []byte(markB)) || bytes.Contains(doc, []byte(markA)) {
		failf("org B's state: %d %.300s", code, doc)
	}

	// Codec: org A's history payloads, as anyone with access to Temporal
	// (or its database) reads them, come back still encrypted to org B's
	// admin, and decoded to org A's.
	encA := historyPayloads(t, f.temporal.address, tA.ID)
	if len(encA) < 10 {
		failf("only %d encrypted payloads in org A's history", len(encA))
	}
	decode := func(c *apiClient) []*commonpb.Payload {
		in, err := protojson.Marshal(&commonpb.Payloads{Payloads: encA})
		if err != nil {
			t.Fatal(err)
		}
		var raw json.RawMessage
		if _, _, err := c.do(http.MethodPost, "/api/v1/codec/decode", json.RawMessage(in), &raw); err != nil {
			failf("codec: %v", err)
		}
		var out commonpb.Payloads
		if err := protojson.Unmarshal(raw, &out); err != nil || len(out.Payloads) != len(encA) {
			failf("codec answer: %v, %d payloads", err, len(out.Payloads))
		}
		return out.Payloads
	}
	for i, p := range decode(apiB) {
		if string(p.GetMetadata()["encoding"]) != codec.Encoding || !bytes.Equal(p.GetData(), encA[i].GetData()) || bytes.Contains(p.GetData(), []byte(markA)) {
			failf("org B's admin decoded org A's payload %d: %q", i, p.GetData())
		}
	}
	var plain bytes.Buffer
	for _, p := range decode(apiA) {
		if string(p.GetMetadata()["encoding"]) != codec.Encoding {
			plain.Write(p.GetData())
		}
	}
	if !strings.Contains(plain.String(), markA) {
		failf("org A's admin did not decode its own payloads")
	}
}

// lastHostOf is the host of the last "picked up by runner id" log line.
func lastHostOf(logs []LogEntry, id string) string {
	host := ""
	for _, l := range logs {
		if rest, ok := strings.CutPrefix(l.Message, "picked up by runner "+id+" on host "); ok {
			host = rest
		}
	}
	return host
}

// historyPayloads reads a workflow's history through the Temporal API with
// no codec (what anyone with access to Temporal sees) and returns its
// encrypted payloads, outside search attributes (plain by design), however
// deep.
func historyPayloads(t *testing.T, address, id string) []*commonpb.Payload {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: address, Namespace: "default", Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []*commonpb.Payload
	var walk func(path string, m protoreflect.Message)
	walk = func(path string, m protoreflect.Message) {
		if p, ok := m.Interface().(*commonpb.Payload); ok {
			if !strings.Contains(path, "search_attributes") && string(p.GetMetadata()["encoding"]) == codec.Encoding {
				out = append(out, p)
			}
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			name := path + "." + string(fd.Name())
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := 0; i < v.List().Len(); i++ {
					walk(name, v.List().Get(i).Message())
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					walk(name, mv.Message())
					return true
				})
			case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
				walk(name, v.Message())
			}
			return true
		})
	}
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		walk("", proto.Message(e).ProtoReflect())
	}
	return out
}

func randomHex(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
