package server

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/schedules"
	"github.com/terratask/terratask/task"
)

const testTemplate = `{"name":"nightly","agent_id":"agent-1","runner_id":"local","parameters":{"files":{"main.tf":"x"},"workspace":"prod","sensitive_variables":{"token":"s3cret"},"env":{"API_KEY":"k3y"}}}`

func resolveBody(t *testing.T, cur schedules.Definition, body string, create bool) (*resolvedSchedule, error) {
	t.Helper()
	b, err := parseScheduleBody([]byte(body))
	if err != nil {
		return nil, err
	}
	return resolveSchedule(cur, b, create)
}

func TestScheduleBodyCreate(t *testing.T) {
	res, err := resolveBody(t, schedules.Definition{}, `{"name":"n","cron":"0 2 * * *","time_zone":"Europe/Berlin","jitter":"5m","template":`+testTemplate+`}`, true)
	if err != nil {
		t.Fatal(err)
	}
	d := res.Def
	if d.Name != "n" || d.Cron != "0 2 * * *" || d.TimeZone != "Europe/Berlin" || time.Duration(d.Jitter) != 5*time.Minute ||
		d.Kind != schedules.KindTask || d.Overlap != schedules.OverlapSkip || d.Paused {
		t.Fatalf("%+v", d)
	}
	if res.Task == nil || res.Task.AgentID != "agent-1" || res.Task.Secrets.SensitiveVariables["token"] != "s3cret" {
		t.Fatalf("template %+v", res.Task)
	}
	// The kept template never holds a secret value.
	if s := string(d.Template); strings.Contains(s, "s3cret") || strings.Contains(s, "k3y") || !strings.Contains(s, `"token":"(sensitive)"`) {
		t.Fatalf("template kept as %s", s)
	}

	// A drift schedule's tasks are plans that detect drift.
	res, err = resolveBody(t, schedules.Definition{}, `{"name":"n","kind":"drift","interval":"24h","template":`+testTemplate+`}`, true)
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Task.Params; p.EffectiveAction() != task.ActionPlan || !p.DetectDrift || time.Duration(res.Def.Interval) != 24*time.Hour {
		t.Fatalf("drift template %+v", p)
	}
	var kept struct {
		Parameters map[string]any `json:"parameters"`
	}
	if err := json.Unmarshal(res.Def.Template, &kept); err != nil || kept.Parameters["detect_drift"] != true || kept.Parameters["action"] != "plan" {
		t.Fatalf("kept drift template %s", res.Def.Template)
	}
}

func TestScheduleBodyPatch(t *testing.T) {
	cur := schedules.Definition{Name: "n", Kind: schedules.KindTask, Spec: schedules.Spec{Cron: "0 2 * * *"}, Overlap: schedules.OverlapSkip,
		Template: json.RawMessage(`{}`)}
	res, err := resolveBody(t, cur, `{"interval":"1h","paused":true,"overlap":"buffer_one"}`, false)
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Def; d.Cron != "" || time.Duration(d.Interval) != time.Hour || !d.Paused || d.Overlap != schedules.OverlapBufferOne || d.Name != "n" || res.Task != nil {
		t.Fatalf("%+v", res)
	}
	res, err = resolveBody(t, res.Def, `{"cron":"@daily","interval":null}`, false)
	if err != nil || res.Def.Cron != "@daily" || res.Def.Interval != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestScheduleBodyRejects(t *testing.T) {
	tpl := `,"template":` + testTemplate
	cur := schedules.Definition{Name: "n", Kind: schedules.KindTask, Spec: schedules.Spec{Cron: "0 2 * * *"}, Overlap: schedules.OverlapSkip}
	cases := []struct {
		body, field string
		patch       bool
	}{
		{`[]`, "body", false},
		{`{}`, "body", true},
		{`{"name":"n","cron":"0 2 * * *"}`, "template", false},
		{`{"cron":"0 2 * * *"` + tpl + `}`, "name", false},
		{`{"name":"n"` + tpl + `}`, "cron", false},
		{`{"name":"n","cron":"every night"` + tpl + `}`, "cron", false},
		{`{"name":"n","cron":"61 * * * *"` + tpl + `}`, "cron", false},
		{`{"name":"n","cron":"0 2 * * * * * *"` + tpl + `}`, "cron", false},
		{`{"name":"n","cron":"CRON_TZ=UTC 0 2 * * *"` + tpl + `}`, "cron", false},
		{`{"name":"n","cron":7` + tpl + `}`, "cron", false},
		{`{"name":"n","interval":"0s"` + tpl + `}`, "cron", false},
		{`{"name":"n","interval":"500ms"` + tpl + `}`, "interval", false},
		{`{"name":"n","interval":"soon"` + tpl + `}`, "interval", false},
		{`{"name":"n","cron":"@daily","interval":"1h"` + tpl + `}`, "interval", false},
		{`{"name":"n","cron":"@daily","time_zone":"Mars/Olympus"` + tpl + `}`, "time_zone", false},
		{`{"name":"n","cron":"@daily","time_zone":"Local"` + tpl + `}`, "time_zone", false},
		{`{"name":"n","cron":"@daily","jitter":"-1m"` + tpl + `}`, "jitter", false},
		{`{"name":"n","cron":"@daily","overlap":"terminate_other"` + tpl + `}`, "overlap", false},
		{`{"name":"n","cron":"@daily","kind":"nightly"` + tpl + `}`, "kind", false},
		{`{"name":"n","cron":"@daily","paused":"yes"` + tpl + `}`, "paused", false},
		{`{"name":"n","cron":"@daily","bogus":1` + tpl + `}`, "bogus", false},
		{`{"name":"n","cron":"@daily","template":null}`, "template", false},
		{`{"name":"n","cron":"@daily","template":[]}`, "template", false},
		{`{"name":"n","cron":"@daily","template":{"name":"x","runner_id":"r"}}`, "template.agent_id", false},
		{`{"name":"n","cron":"@daily","template":{"name":"x","agent_id":"a","runner_id":"r","parameters":{"timeout":"forever"}}}`, "template.parameters.timeout", false},
		{`{"name":"n","cron":"@daily","kind":"drift","template":{"name":"x","agent_id":"a","runner_id":"r","parameters":{"action":"apply","workspace":"w"}}}`, "template.parameters.action", false},
		{`{"name":"n","cron":"@daily","kind":"drift","template":{"name":"x","agent_id":"a","runner_id":"r"}}`, "template.parameters.workspace", false},
		{`{"name":"n","cron":"@daily","kind":"drift","template":{"name":"x","agent_id":"a","runner_id":"r","parameters":{"detect_drift":false,"workspace":"w"}}}`, "template.parameters.detect_drift", false},
		{`{"kind":"drift"}`, "kind", true},
		{`{"cron":null}`, "cron", true},
	}
	for _, c := range cases {
		var err error
		if c.patch {
			_, err = resolveBody(t, cur, c.body, false)
		} else {
			_, err = resolveBody(t, schedules.Definition{}, c.body, true)
		}
		var fe *fieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: want a field error, got %v", c.body, err)
			continue
		}
		if fe.Field != c.field {
			t.Errorf("%s: field %q, want %q (%s)", c.body, fe.Field, c.field, fe.Message)
		}
		if strings.Contains(fe.Error(), "s3cret") {
			t.Errorf("%s: error echoes a secret: %v", c.body, fe)
		}
	}
}

func TestScheduleListQuery(t *testing.T) {
	q, page, err := parseScheduleListQuery(map[string][]string{"kind": {"drift"}, "limit": {"5"}, "page": {"3"}})
	if err != nil || q.Kind != "drift" || q.Limit != 5 || q.Offset != 10 || page != 3 {
		t.Fatalf("%+v %d %v", q, page, err)
	}
	for raw, field := range map[string]string{"kind=x": "kind", "limit=0": "limit", "page=0": "page", "status=x": "status"} {
		k, v, _ := strings.Cut(raw, "=")
		_, _, err := parseScheduleListQuery(map[string][]string{k: {v}})
		var fe *fieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: %v", raw, err)
		}
	}
}
