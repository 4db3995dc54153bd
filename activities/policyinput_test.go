package activities

import (
	"strings"
	"testing"

	"github.com/terratask/terratask/secret"
	"github.com/terratask/terratask/task"
)

func TestMaskPlanJSONHidesEverySensitiveValue(t *testing.T) {
	raw := `{"format_version":"1.2","variables":{"db_password":{"value":"hunter2"},"region":{"value":"eu"}},
	"planned_values":{"outputs":{"pw":{"sensitive":true,"value":"p-out"}},"root_module":{"resources":[
		{"address":"x.a","values":{"password":"p-planned","name":"a"},"sensitive_values":{"password":true}}],
		"child_modules":[{"resources":[{"address":"module.m.x.b","values":{"secret":"p-child"},"sensitive_values":{"secret":true}}]}]}},
	"resource_changes":[{"address":"x.a","change":{"actions":["create"],"before":null,"after":{"password":"p-after","tags":{"note":"uses hunter2"}},
		"after_sensitive":{"password":true}}}],
	"output_changes":{"pw":{"actions":["create"],"after":"p-oc","after_sensitive":true}},
	"prior_state":{"values":{"root_module":{"resources":[{"address":"x.c","values":{"key":"p-prior"},"sensitive_values":{"key":true}}]}}},
	"configuration":{"root_module":{"variables":{"token":{"default":"p-default","sensitive":true}},
		"module_calls":{"m":{"module":{"variables":{"inner":{"default":"p-inner","sensitive":true}}}}}}}}`
	secrets := task.Secrets{SensitiveVariables: map[string]any{"db_password": "hunter2"}}
	out, err := maskPlanJSON([]byte(raw), secrets, secret.NewMasker(secrets))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, leak := range []string{"hunter2", "p-planned", "p-child", "p-after", "p-out", "p-oc", "p-prior", "p-default", "p-inner"} {
		if strings.Contains(s, leak) {
			t.Errorf("masked plan JSON still holds %q: %s", leak, s)
		}
	}
	for _, kept := range []string{`"region":{"value":"eu"}`, `"name":"a"`, `"format_version":"1.2"`, `"actions":["create"]`} {
		if !strings.Contains(s, kept) {
			t.Errorf("masked plan JSON lost %s: %s", kept, s)
		}
	}
}
