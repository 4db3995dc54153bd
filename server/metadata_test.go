package server

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestMetadataLimits: metadata holds at most 64 keys of at most 128 bytes,
// each value at most 1024 bytes of compact JSON; past that, a 400 naming
// the field.
func TestMetadataLimits(t *testing.T) {
	body := func(meta map[string]any) string {
		b, _ := json.Marshal(map[string]any{"name": "n", "agent_id": "a", "runner_id": "r", "metadata": meta})
		return string(b)
	}
	full := map[string]any{}
	for i := 0; i < maxMetadataKeys; i++ {
		k := fmt.Sprintf("%03d%s", i, strings.Repeat("k", maxMetadataKeyLen-3))
		full[k] = strings.Repeat("v", maxMetadataValueBytes-2) // its JSON: 1024 bytes
	}
	if req, err := parseCreate([]byte(body(full))); err != nil || len(req.Metadata) != maxMetadataKeys {
		t.Fatalf("at the limits: %v", err)
	}
	// Whitespace does not count, nested values do.
	spaced := `{"name":"n","agent_id":"a","runner_id":"r","metadata":{"k":    [1,  2,   3` + strings.Repeat(" ", 2000) + `]}}`
	if _, err := parseCreate([]byte(spaced)); err != nil {
		t.Fatalf("whitespace counted: %v", err)
	}
	tooMany := map[string]any{"extra": 1}
	for k, v := range full {
		tooMany[k] = v
	}
	for name, c := range map[string]struct {
		body, field, msg string
	}{
		"65 keys":      {body(tooMany), "metadata", "at most 64 keys"},
		"long key":     {body(map[string]any{strings.Repeat("k", 129): 1}), "metadata", "at most 128 bytes"},
		"long value":   {body(map[string]any{"big": strings.Repeat("v", 1023)}), "metadata.big", "at most 1024 bytes"},
		"deep value":   {body(map[string]any{"deep": map[string]any{"a": []string{strings.Repeat("x", 600), strings.Repeat("y", 600)}}}), "metadata.deep", "at most 1024 bytes"},
		"not object":   {`{"name":"n","agent_id":"a","runner_id":"r","metadata":[1]}`, "metadata", "JSON object"},
		"empty object": {body(map[string]any{}), "", ""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseCreate([]byte(c.body))
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			fe, ok := err.(*fieldError)
			if !ok || fe.Field != c.field || !strings.Contains(fe.Message, c.msg) {
				t.Fatalf("%v", err)
			}
		})
	}
	// Over HTTP: a 400 naming the field.
	ts := newTestServer(t, true)
	w := ts.do(t, req{method: "POST", path: "/api/v1/tasks", key: "k-operator-a", body: body(tooMany)})
	var eb struct {
		Error struct {
			Code    string
			Details map[string]any
		} `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || w.Code != 400 || eb.Error.Details["field"] != "metadata" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}
