package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/terratask/terratask/schedules"
	"github.com/terratask/terratask/task"
)

// scheduleFields are the fields of a schedule's create and patch bodies.
var scheduleFields = map[string]bool{
	"name": true, "cron": true, "interval": true, "time_zone": true, "jitter": true,
	"paused": true, "overlap": true, "kind": true, "template": true,
}

// scheduleBody is a parsed create or patch body of /api/v1/schedules. Set
// says which fields the body gave (a patch changes only those).
type scheduleBody struct {
	Set      map[string]bool
	Name     string
	Cron     string
	Interval time.Duration
	TimeZone string
	Jitter   time.Duration
	Paused   bool
	Overlap  schedules.Overlap
	Kind     schedules.Kind
	// Template is the raw create body of the schedule's tasks.
	Template json.RawMessage
}

// parseScheduleBody decodes a create or patch body without checking the
// template or the spec as a whole (see resolveSchedule). Errors are
// *fieldError.
func parseScheduleBody(body []byte) (*scheduleBody, error) {
	var raw map[string]json.RawMessage
	if err := decodeStrict(body, &raw); err != nil {
		return nil, errField("body", "request body must be a JSON object: %s", jsonProblem(err))
	}
	if raw == nil {
		return nil, errField("body", "request body must be a JSON object")
	}
	b := &scheduleBody{Set: map[string]bool{}}
	for _, k := range sortedKeys(raw) {
		if !scheduleFields[k] {
			name := k
			if name == "" {
				name = `""`
			}
			return nil, errField(name, "unknown field %q (allowed: name, cron, interval, time_zone, jitter, paused, overlap, kind, template)", k)
		}
		b.Set[k] = true
		v := raw[k]
		null := isNull(v)
		var err error
		switch k {
		case "name":
			b.Name, err = requiredString(raw, k, maxNameLen)
		case "cron":
			if !null && (json.Unmarshal(v, &b.Cron) != nil || strings.TrimSpace(b.Cron) == "" || len(b.Cron) > 256) {
				err = errField(k, "must be a cron expression such as \"0 2 * * *\" (at most 256 characters)")
			}
			b.Cron = strings.TrimSpace(b.Cron)
		case "interval", "jitter":
			var d time.Duration
			if !null {
				var s string
				if json.Unmarshal(v, &s) != nil {
					return nil, errField(k, "must be a duration string such as \"24h\"")
				}
				if d, err = time.ParseDuration(s); err != nil || d < 0 || d > 366*24*time.Hour {
					return nil, errField(k, "must be a duration such as \"24h\" or \"90s\", at most 366 days")
				}
			}
			if k == "interval" {
				b.Interval = d
			} else {
				b.Jitter = d
			}
		case "time_zone":
			if !null && (json.Unmarshal(v, &b.TimeZone) != nil || len(b.TimeZone) > 64) {
				err = errField(k, "must be an IANA time zone name such as Europe/Berlin")
			}
		case "paused":
			if null || json.Unmarshal(v, &b.Paused) != nil {
				err = errField(k, "must be a boolean")
			}
		case "overlap":
			var s string
			if null || json.Unmarshal(v, &s) != nil || !schedules.Overlap(s).Valid() {
				err = errField(k, "must be one of skip, buffer_one, buffer_all, cancel_other, allow_all")
			}
			b.Overlap = schedules.Overlap(s)
		case "kind":
			var s string
			if null || json.Unmarshal(v, &s) != nil || !schedules.Kind(s).Valid() {
				err = errField(k, "must be task or drift")
			}
			b.Kind = schedules.Kind(s)
		case "template":
			if null {
				err = errField(k, "must be a task's create body (name, agent_id, runner_id, parameters...)")
			}
			b.Template = v
		}
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// resolvedSchedule is a schedule ready to create or update.
type resolvedSchedule struct {
	Def schedules.Definition
	// Task is the parsed template; nil when a patch keeps the template.
	Task *createRequest
}

// resolveSchedule lays a parsed body over a schedule's current definition
// (the zero Definition for a create) and checks the result: the spec as
// Temporal reads it, and the template as a create body (a drift schedule's
// template becomes a plan with detect_drift). Errors are *fieldError naming
// the field, template.<field> for the template's.
func resolveSchedule(cur schedules.Definition, b *scheduleBody, create bool) (*resolvedSchedule, error) {
	if len(b.Set) == 0 {
		return nil, errField("body", "give at least one field to change")
	}
	if create {
		for _, k := range []string{"name", "template"} {
			if !b.Set[k] {
				return nil, errField(k, "is required")
			}
		}
		cur = schedules.Definition{Kind: schedules.KindTask, Overlap: schedules.OverlapSkip}
	}
	d := cur
	if b.Set["cron"] && b.Set["interval"] && b.Cron != "" && b.Interval != 0 {
		return nil, errField("interval", "give a cron expression or an interval, not both")
	}
	if b.Set["name"] {
		d.Name = b.Name
	}
	// A schedule has a cron expression or an interval: setting one
	// clears the other.
	if b.Set["cron"] {
		if d.Cron = b.Cron; b.Cron != "" {
			d.Interval = 0
		}
	}
	if b.Set["interval"] {
		if d.Interval = task.Duration(b.Interval); b.Interval != 0 {
			d.Cron = ""
		}
	}
	if b.Set["time_zone"] {
		d.TimeZone = b.TimeZone
	}
	if b.Set["jitter"] {
		d.Jitter = task.Duration(b.Jitter)
	}
	if b.Set["paused"] {
		d.Paused = b.Paused
	}
	if b.Set["overlap"] {
		d.Overlap = b.Overlap
	}
	if b.Set["kind"] {
		if !create && b.Kind != cur.Kind && !b.Set["template"] {
			return nil, errField("kind", "changing the kind needs the template too (its secrets are not kept in readable form)")
		}
		d.Kind = b.Kind
	}
	if err := d.Spec.Validate(); err != nil {
		var se *schedules.SpecError
		if errors.As(err, &se) {
			return nil, errField(se.Field, "%s", se.Err.Error())
		}
		return nil, errField("cron", "%s", err.Error())
	}
	out := &resolvedSchedule{Def: d}
	if b.Set["template"] {
		raw, err := kindTemplate(b.Template, d.Kind)
		if err != nil {
			return nil, err
		}
		req, err := parseCreate(raw)
		if err != nil {
			fe := &fieldError{Field: "body", Message: "invalid template"}
			errors.As(err, &fe)
			field := "template"
			if fe.Field != "body" {
				field += "." + fe.Field
			}
			return nil, errField(field, "%s", fe.Message)
		}
		if out.Def.Template, err = maskTemplate(raw); err != nil {
			return nil, errField("template", "must be a JSON object")
		}
		out.Task = req
	}
	return out, nil
}

// kindTemplate makes a drift schedule's template a drift check: action
// plan (any other action is an error) and detect_drift. A task schedule's
// template is returned as given.
func kindTemplate(raw json.RawMessage, kind schedules.Kind) (json.RawMessage, error) {
	if kind != schedules.KindDrift {
		return raw, nil
	}
	var body map[string]json.RawMessage
	if decodeStrict(raw, &body) != nil || body == nil {
		return nil, errField("template", "must be a task's create body (a JSON object)")
	}
	var params map[string]json.RawMessage
	if p, ok := body["parameters"]; ok && !isNull(p) {
		if decodeStrict(p, &params) != nil || params == nil {
			return nil, errField("template.parameters", "must be a JSON object")
		}
	}
	if params == nil {
		params = map[string]json.RawMessage{}
	}
	if a, ok := params["action"]; ok && !isNull(a) && !bytes.Equal(bytes.TrimSpace(a), []byte(`"plan"`)) {
		return nil, errField("template.parameters.action", "a drift schedule's tasks are plan-only: leave action out or make it plan")
	}
	if d, ok := params["detect_drift"]; ok && !isNull(d) && !bytes.Equal(bytes.TrimSpace(d), []byte(`true`)) {
		return nil, errField("template.parameters.detect_drift", "a drift schedule's tasks detect drift: leave detect_drift out or make it true")
	}
	params["action"], params["detect_drift"] = json.RawMessage(`"plan"`), json.RawMessage(`true`)
	p, err := json.Marshal(params)
	if err != nil {
		return nil, errField("template.parameters", "must be a JSON object")
	}
	body["parameters"] = p
	return json.Marshal(body)
}

// maskTemplate is the template with the values of sensitive_variables and
// env replaced by "(sensitive)": what the store keeps and the API shows.
func maskTemplate(raw json.RawMessage) (json.RawMessage, error) {
	var body map[string]json.RawMessage
	if err := decodeStrict(raw, &body); err != nil {
		return nil, err
	}
	var params map[string]json.RawMessage
	if p, ok := body["parameters"]; ok && decodeStrict(p, &params) == nil && params != nil {
		for _, k := range []string{"sensitive_variables", "env"} {
			var secrets map[string]json.RawMessage
			if v, ok := params[k]; !ok || decodeStrict(v, &secrets) != nil || secrets == nil {
				continue
			}
			for name := range secrets {
				secrets[name] = json.RawMessage(`"(sensitive)"`)
			}
			b, err := json.Marshal(secrets)
			if err != nil {
				return nil, err
			}
			params[k] = b
		}
		b, err := json.Marshal(params)
		if err != nil {
			return nil, err
		}
		body["parameters"] = b
	}
	return json.Marshal(body)
}
