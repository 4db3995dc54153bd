package activities

import (
	"encoding/json"
	"reflect"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/task"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestHideSensitiveAndMarkUnknown(t *testing.T) {
	for _, c := range []struct{ value, sensitive, unknown, want string }{
		{`"x"`, `true`, `false`, `"(sensitive)"`},
		{`null`, `true`, `false`, `null`},
		{`{"a":1,"b":{"c":"s","d":2}}`, `{"b":{"c":true}}`, `{}`, `{"a":1,"b":{"c":"(sensitive)","d":2}}`},
		{`{"a":[1,"s",3]}`, `{"a":[false,true]}`, `{}`, `{"a":[1,"(sensitive)",3]}`},
		{`{"a":1}`, `{}`, `{"id":true,"tags":{"x":true}}`, `{"a":1,"id":"(known after apply)","tags":{"x":"(known after apply)"}}`},
		{`null`, `false`, `true`, `"(known after apply)"`},
		{`{"l":[1]}`, `{}`, `{"l":[false,true]}`, `{"l":[1,"(known after apply)"]}`},
		// Sensitive and unknown: sensitive wins.
		{`{}`, `{"p":true}`, `{"p":true}`, `{"p":"(sensitive)"}`},
		// Markers that do not fit the value leave it alone.
		{`"x"`, `{"a":true}`, `[true]`, `"x"`},
	} {
		v := hideSensitive(markUnknown(decode(t, c.value), decode(t, c.unknown)), decode(t, c.sensitive))
		if got := decode(t, jsonString(t, v)); !reflect.DeepEqual(got, decode(t, c.want)) {
			t.Errorf("value %s sensitive %s unknown %s: got %s, want %s", c.value, c.sensitive, c.unknown, jsonString(t, v), c.want)
		}
	}
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMaskDeepMasksKeysStringsAndNumbers(t *testing.T) {
	m := secret.NewMasker(task.Secrets{SensitiveVariables: map[string]any{"a": "s3cr3t", "pin": 4711}})
	v := maskDeep(decode(t, `{"s3cr3t":["x-s3cr3t-y",4711,4712,{"k":"s3cr3t"}]}`), m)
	if got := jsonString(t, v); got != `{"***":["x-***-y","***",4712,{"k":"***"}]}` {
		t.Fatalf("masked %s", got)
	}
}

func TestCountChangesAsTerraform(t *testing.T) {
	rc := func(actions ...tfjson.Action) *tfjson.ResourceChange {
		return &tfjson.ResourceChange{Address: "x", Change: &tfjson.Change{Actions: actions}}
	}
	imported := rc(tfjson.ActionNoop)
	imported.Change.Importing = &tfjson.Importing{ID: "i-1"}
	p := &tfjson.Plan{ResourceChanges: []*tfjson.ResourceChange{
		rc(tfjson.ActionCreate), rc(tfjson.ActionUpdate), rc(tfjson.ActionDelete),
		rc(tfjson.ActionDelete, tfjson.ActionCreate), rc(tfjson.ActionCreate, tfjson.ActionDelete),
		rc(tfjson.ActionNoop), rc(tfjson.ActionRead), rc(tfjson.ActionForget), imported,
	}, OutputChanges: map[string]*tfjson.Change{
		"same": {Actions: tfjson.Actions{tfjson.ActionNoop}},
		"new":  {Actions: tfjson.Actions{tfjson.ActionCreate}, After: "v"},
	}}
	doc := reviewOf(p, secret.NewMasker(task.Secrets{}))
	want := task.PlanSummary{Add: 3, Change: 3, Destroy: 3, Replace: 2, Outputs: 1}
	if doc.Summary != want || len(doc.ResourceChanges) != 9 || len(doc.OutputChanges) != 2 || doc.ResourceDrift == nil {
		t.Fatalf("summary %+v, %d changes, %d outputs", doc.Summary, len(doc.ResourceChanges), len(doc.OutputChanges))
	}
	if !doc.ResourceChanges[8].Importing || doc.OutputChanges["new"].After != "v" {
		t.Fatalf("%+v", doc)
	}
	if maskPlanText("  ~ password = (sensitive value)", secret.NewMasker(task.Secrets{})) != "  ~ password = "+api.SensitiveValue {
		t.Fatal("Terraform's sensitive marker is not rewritten")
	}
}
