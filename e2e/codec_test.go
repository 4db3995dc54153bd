package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/terratask/terratask/codec"
	"github.com/terratask/terratask/codec/control"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/secret/master"
)

func randomMarker(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// foundPayload is a payload found in a message, with its field path.
type foundPayload struct {
	path string
	p    *commonpb.Payload
}

// payloadsOf walks a message and returns every Payload in it, however deep
// (inputs, results, memo, user metadata, failure details and attributes,
// search attributes, headers...).
func payloadsOf(m proto.Message) []foundPayload {
	var out []foundPayload
	var walk func(path string, m protoreflect.Message)
	walk = func(path string, m protoreflect.Message) {
		if p, ok := m.Interface().(*commonpb.Payload); ok {
			out = append(out, foundPayload{path, p})
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
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					walk(name+"["+k.String()+"]", mv.Message())
					return true
				})
			case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
				walk(name, v.Message())
			}
			return true
		})
	}
	walk("", m.ProtoReflect())
	return out
}

// rawHistory reads a workflow's history through the Temporal API with no
// codec: what anyone with access to Temporal (or its database) sees.
func rawHistory(t *testing.T, dev *devProc, id string) []*historypb.HistoryEvent {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: dev.temporal, Namespace: "default", ConnectionOptions: devTemporalTLS(t, dev.dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var events []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	return events
}

// checkEncrypted fails on any payload outside search attributes that is not
// encrypted, or any plaintext marker anywhere in the raw bytes; it returns
// the encrypted payloads and how many there were per key ID.
func checkEncrypted(t *testing.T, what string, msgs []proto.Message, markers []string) ([]*commonpb.Payload, map[string]int) {
	t.Helper()
	var enc []*commonpb.Payload
	byKey := map[string]int{}
	for _, m := range msgs {
		raw, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, mk := range markers {
			if bytes.Contains(raw, []byte(mk)) {
				t.Errorf("%s: plaintext %q in %s", what, mk, protojson.Format(m))
			}
		}
		for _, f := range payloadsOf(m) {
			if strings.Contains(f.path, "search_attributes") {
				continue // indexed, plain by design; they hold status, agent, runner, org
			}
			if got := string(f.p.GetMetadata()["encoding"]); got != codec.Encoding {
				t.Errorf("%s: payload at %s has encoding %q: %s", what, f.path, got, f.p.GetData())
				continue
			}
			enc = append(enc, f.p)
			byKey[string(f.p.GetMetadata()[codec.MetadataKeyID])]++
		}
	}
	return enc, byKey
}

// decodeThroughCodec posts payloads to the codec route and returns the
// decoded ones (or the reply when it is not a 200).
func decodeThroughCodec(t *testing.T, p *devProc, key string, ps []*commonpb.Payload) (reply, []*commonpb.Payload) {
	t.Helper()
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	r := p.call(t, http.MethodPost, "/api/v1/codec/decode", key, body)
	if r.code != http.StatusOK {
		return r, nil
	}
	var out commonpb.Payloads
	if err := protojson.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("codec answer %s: %v", r.body, err)
	}
	return r, out.Payloads
}

func describeRaw(t *testing.T, dev *devProc, id string) proto.Message {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: dev.temporal, Namespace: "default", ConnectionOptions: devTemporalTLS(t, dev.dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := c.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestPayloadsEncryptedCodecAndRotation runs real tasks on a dev instance of
// its own and reads their histories through the Temporal API without the
// codec: no payload but search attributes is plain, and no variable, output,
// secret or task name appears anywhere. The codec route decodes them for an
// admin key and refuses a viewer key and no key. Then the secret key is
// rotated: a task that was running finishes, old histories still decode, and
// new payloads use the new key.
func TestPayloadsEncryptedCodecAndRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keysPath := filepath.Join(dir, "keys.yaml")
	writeKeysFile(t, keysPath, []principal{
		{"codec-admin", "raw-codec-admin-71c2", "default", "admin", ""},
		{"codec-viewer", "raw-codec-viewer-2d9e", "default", "viewer", ""},
	})
	dataDir := filepath.Join(dir, "data")
	dev, err := startDev(dataDir, "raw-codec-dev-admin-93aa", "--api-keys-file", keysPath)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			if err := dev.stop(); err != nil {
				t.Error(err)
			}
		}
	}()

	m := randomMarker(t)
	name, word, token := "plaintext-name-"+m, "plaintext-word-"+m, "plaintext-token-"+m
	tk := dev.create(t, map[string]any{
		"name": name, "agent_id": "agent-codec", "runner_id": "local",
		"parameters": map[string]any{
			"files": fixture(t, "echo"), "word": word,
			"sensitive_variables": map[string]any{"token": token},
		},
	})
	if last := dev.waitStatus(t, tk.ID, 3*time.Minute, terminal); last[len(last)-1].Status != "completed" {
		t.Fatalf("task ended %+v", last[len(last)-1])
	}
	if out := dev.get(t, tk.ID).Result.Output["echoed"]; out != word+"-out" {
		t.Fatalf("output %v", out)
	}
	markers := []string{name, word, token, word + "-out"}

	events := rawHistory(t, dev, tk.ID)
	msgs := make([]proto.Message, 0, len(events)+1)
	for _, e := range events {
		msgs = append(msgs, e)
	}
	msgs = append(msgs, describeRaw(t, dev, tk.ID)) // memo, static summary and details
	enc, byKey := checkEncrypted(t, "history of "+tk.ID, msgs, markers)
	// Every payload of the task is under its org's key (derived from the
	// secret key), which the org's runners hold: none under the secret
	// key's own.
	oldKey, err := os.ReadFile(filepath.Join(dataDir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	oldKeyID := orgKeyID(t, oldKey, "default")
	if len(enc) < 20 || len(byKey) != 1 || byKey[oldKeyID] != len(enc) {
		t.Fatalf("%d encrypted payloads under key IDs %v, want all under org default's %s", len(enc), byKey, oldKeyID)
	}

	// The codec route decodes them for an admin key...
	r, dec := decodeThroughCodec(t, dev, "raw-codec-admin-71c2", enc)
	if r.code != 200 || len(dec) != len(enc) {
		t.Fatalf("admin decode: %d %s", r.code, r.body)
	}
	var all bytes.Buffer
	for _, p := range dec {
		if string(p.GetMetadata()["encoding"]) == codec.Encoding {
			t.Fatalf("a payload came back encrypted")
		}
		all.Write(p.GetData())
	}
	for _, want := range []string{name, word, word + "-out", name + " (agent agent-codec)"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("decoded payloads lack %q", want)
		}
	}
	// ...and refuses a viewer key and no key, with the error body.
	for key, want := range map[string]int{"raw-codec-viewer-2d9e": 403, "": 401} {
		r, _ := decodeThroughCodec(t, dev, key, enc[:1])
		r.errorOf(t)
		if r.code != want || strings.Contains(string(r.body), m) {
			t.Errorf("key %q: %d %s, want %d", key, r.code, r.body, want)
		}
	}

	// Rotation. A slow task with a secret is mid-apply when dev stops.
	slow := dev.create(t, map[string]any{
		"name": "rotation-" + m, "agent_id": "agent-codec", "runner_id": "local",
		"parameters": map[string]any{"files": fixture(t, "slow"), "parallelism": 1, "step_seconds": 2,
			"sensitive_variables": map[string]any{"unused": token}},
	})
	dev.waitStatus(t, slow.ID, 2*time.Minute, func(s Status) bool {
		if terminal(s) {
			t.Fatalf("task ended before the rotation: %+v", s)
		}
		return s.Metadata.CurrentStep == "applying"
	})
	// While it runs, the workflow's current details (what the Web UI shows)
	// name the step and its progress.
	checkCurrentDetails(t, dev, slow.ID, "step applying (4 of 4)")
	if err := dev.stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	keyPath := filepath.Join(dataDir, "secret.key")
	oldKeysPath := filepath.Join(dir, "old-secret-keys")
	if err := os.WriteFile(oldKeysPath, append([]byte("# rotated by the test\n"), oldKey...), 0o600); err != nil {
		t.Fatal(err)
	}
	newKey := make([]byte, secret.KeySize)
	rand.Read(newKey)
	if err := os.WriteFile(keyPath, []byte(base64.StdEncoding.EncodeToString(newKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dev, err = startDev(dataDir, "raw-codec-dev-admin-93aa", "--api-keys-file", keysPath, "--old-secret-keys-file", oldKeysPath)
	if err != nil {
		t.Fatal(err)
	}
	stopped = false
	// The task that was running when the key changed finishes.
	if last := dev.waitStatus(t, slow.ID, 3*time.Minute, terminal); last[len(last)-1].Status != "completed" {
		t.Fatalf("after rotation the running task ended %+v\n%v", last[len(last)-1], dev.logs(t, slow.ID, "?level=warn,error"))
	}
	// Histories from before the rotation still decode.
	r, dec = decodeThroughCodec(t, dev, "raw-codec-admin-71c2", enc)
	if r.code != 200 || len(dec) != len(enc) {
		t.Fatalf("decode after rotation: %d %s", r.code, r.body)
	}
	// The running task's history holds both keys; new payloads the new one.
	slowEvents := rawHistory(t, dev, slow.ID)
	msgs = msgs[:0]
	for _, e := range slowEvents {
		msgs = append(msgs, e)
	}
	_, byKey = checkEncrypted(t, "history of "+slow.ID, msgs, []string{token})
	newKeyID := orgKeyID(t, []byte(base64.StdEncoding.EncodeToString(newKey)), "default")
	if byKey[oldKeyID] == 0 || byKey[newKeyID] == 0 || len(byKey) != 2 {
		t.Fatalf("key IDs in the history of a task that spanned the rotation: %v (old %s, new %s)", byKey, oldKeyID, newKeyID)
	}
	if raw, _ := json.Marshal(dev.get(t, slow.ID)); strings.Contains(string(raw), token) {
		t.Fatal("secret in the API's output")
	}
}

// orgKeyID is the payload key ID of org's key under the secret key in
// base64 raw.
func orgKeyID(t *testing.T, raw []byte, org string) string {
	t.Helper()
	key, err := secret.ParseKey(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	ok, err := master.OrgKey(key, org)
	if err != nil {
		t.Fatal(err)
	}
	id, err := codec.KeyID(ok)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// checkCurrentDetails queries a running task's workflow metadata (the
// built-in query the Web UI uses) as an application sharing the secret key.
func checkCurrentDetails(t *testing.T, p *devProc, id, want string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(p.dataDir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := secret.ParseKey(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	cdc, err := control.New(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{HostPort: p.temporal, Namespace: "default", DataConverter: cdc.DataConverter(),
		ConnectionOptions: devTemporalTLS(t, p.dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := c.QueryWorkflow(ctx, id, "", "__temporal_workflow_metadata")
	if err != nil {
		t.Fatal(err)
	}
	var md sdkpb.WorkflowMetadata
	if err := v.Get(&md); err != nil {
		t.Fatal(err)
	}
	if d := md.GetCurrentDetails(); !strings.Contains(d, want) || !strings.Contains(d, "running") {
		t.Fatalf("current details %q, want %q", d, want)
	}
}
