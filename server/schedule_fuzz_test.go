package server

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/terratask/terratask/schedules"
)

// FuzzParseScheduleBody: a schedule's create or patch body gives a
// schedule whose spec Temporal accepts and whose kept template holds no
// secret value, or a field error; never a panic.
func FuzzParseScheduleBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"n","cron":"0 2 * * *","template":` + testTemplate + `}`,
		`{"name":"n","kind":"drift","interval":"24h","jitter":"1m","time_zone":"Asia/Tokyo","template":` + testTemplate + `}`,
		`{"paused":true}`, `{"cron":"@every 1h/5m"}`, `{"interval":null,"cron":"*/5 * * * 1-5"}`,
		`{"name":"n","cron":"0 0 31 2 *","overlap":"allow_all","template":{}}`, `[]`, `{`, `null`, `{"":1}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	cur := schedules.Definition{Name: "n", Kind: schedules.KindTask, Spec: schedules.Spec{Cron: "@daily"}, Overlap: schedules.OverlapSkip}
	f.Fuzz(func(t *testing.T, body []byte, patch bool) {
		b, err := parseScheduleBody(body)
		var res *resolvedSchedule
		if err == nil {
			if patch {
				res, err = resolveSchedule(cur, b, false)
			} else {
				res, err = resolveSchedule(schedules.Definition{}, b, true)
			}
		}
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) || fe.Field == "" || fe.Message == "" {
				t.Fatalf("error is not a field error: %v", err)
			}
			return
		}
		if err := res.Def.Spec.Validate(); err != nil {
			t.Fatalf("accepted a spec Temporal refuses: %v", err)
		}
		if !res.Def.Kind.Valid() || !res.Def.Overlap.Valid() || res.Def.Name == "" {
			t.Fatalf("accepted %+v", res.Def)
		}
		if res.Task == nil {
			if !patch {
				t.Fatal("a create without a template")
			}
			return
		}
		kept := string(res.Def.Template)
		for _, v := range res.Task.Secrets.SensitiveVariables {
			if s, ok := v.(string); ok && len(s) > 3 && strings.Contains(kept, s) && !strings.Contains(string(body), s+`"`+`:`) {
				t.Fatalf("kept template %s holds a secret value %q", kept, s)
			}
		}
		if !json.Valid(res.Def.Template) {
			t.Fatalf("kept template is not JSON: %s", kept)
		}
	})
}

func FuzzParseScheduleListQuery(f *testing.F) {
	for _, s := range []string{"kind=drift&limit=10&page=2", "limit=0", "kind=", "page=99999999999", "x=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		sq, page, err := parseScheduleListQuery(q)
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("error is not a field error: %v", err)
			}
			return
		}
		if sq.Limit < 1 || sq.Limit > maxListLimit || page < 1 || sq.Offset != (page-1)*sq.Limit {
			t.Fatalf("accepted %+v page %d", sq, page)
		}
	})
}
