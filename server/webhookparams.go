package server

import (
	"encoding/json"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/events"
	"github.com/terratask/terratask/task"
)

// webhookFields are the fields of a create body.
var webhookFields = map[string]bool{"url": true, "events": true, "agent": true, "runner": true, "secret": true}

// parseWebhook decodes and validates a POST /webhooks body. Errors are
// *fieldError; messages never echo the secret.
func parseWebhook(body []byte) (api.NewWebhook, error) {
	var raw map[string]json.RawMessage
	var w api.NewWebhook
	if err := decodeStrict(body, &raw); err != nil || raw == nil {
		return w, errField("body", "request body must be a JSON object")
	}
	for _, k := range sortedKeys(raw) {
		if !webhookFields[k] {
			name := k
			if name == "" {
				name = `""`
			}
			return w, errField(name, "unknown field %q (allowed: url, events, agent, runner, secret)", k)
		}
	}
	str := func(k string) (string, bool, error) {
		v, ok := raw[k]
		if !ok || isNull(v) {
			return "", false, nil
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", false, errField(k, "must be a string")
		}
		return s, true, nil
	}
	u, _, err := str("url")
	if err != nil {
		return w, err
	}
	if _, err := events.CheckURL(u); err != nil {
		return w, errField("url", "%s", err.Error())
	}
	w.URL = u
	if v, ok := raw["events"]; ok && !isNull(v) {
		var names []string
		if json.Unmarshal(v, &names) != nil {
			return w, errField("events", "must be an array of event types")
		}
		seen := map[task.EventType]bool{}
		for _, n := range names {
			t := task.EventType(n)
			if !t.Valid() {
				return w, errField("events", "%q is not an event type (%s)", n, eventTypeList())
			}
			if !seen[t] {
				seen[t] = true
				w.Events = append(w.Events, t)
			}
		}
	}
	for _, k := range []string{"agent", "runner"} {
		v, ok, err := str(k)
		if err != nil {
			return w, err
		}
		if ok && !validID(v) {
			return w, errField(k, "is not a valid %s ID", k)
		}
		if k == "agent" {
			w.Agent = v
		} else {
			w.Runner = v
		}
	}
	sec, ok, err := str("secret")
	if err != nil {
		return w, err
	}
	if ok && (len(sec) < minSecretLen || len(sec) > maxSecretLen || !secretPattern.MatchString(sec)) {
		return w, errField("secret", "must be %d to %d printable ASCII characters without spaces (or left out: the server generates one)", minSecretLen, maxSecretLen)
	}
	w.Secret = sec
	return w, nil
}
