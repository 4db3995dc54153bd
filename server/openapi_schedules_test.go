package server

import (
	"reflect"
	"sort"
	"testing"

	"github.com/terratask/terratask/api"
	"github.com/terratask/terratask/task"
)

// TestOpenAPISchedulesMatchTheCode keeps the schedule, drift and engine
// parts of the document equal to the code.
func TestOpenAPISchedulesMatchTheCode(t *testing.T) {
	d := loadOpenAPI(t)
	for schema, view := range map[string]any{
		"Schedule": api.Schedule{}, "ScheduleRun": api.ScheduleRun{}, "Drift": task.Drift{},
		"DriftResource": task.DriftResource{}, "Result": task.Result{},
	} {
		if got, want := d.properties(t, schema), jsonFields(view); !reflect.DeepEqual(got, want) {
			t.Errorf("schema %s has %v, the code %v", schema, got, want)
		}
	}
	for schema, body := range map[string]any{"ScheduleRequest": api.NewSchedule{}, "SchedulePatch": api.SchedulePatch{}} {
		if got, want := d.properties(t, schema), sortedSet(scheduleFields); !reflect.DeepEqual(got, want) {
			t.Errorf("%s has %v, the parser %v", schema, got, want)
		}
		if got, want := d.properties(t, schema), jsonFields(body); !reflect.DeepEqual(got, want) {
			t.Errorf("%s has %v, the client's body %v", schema, got, want)
		}
	}
	var names []string
	for _, p := range d.operations()["GET /api/v1/schedules"]["parameters"].([]any) {
		names = append(names, d.resolve(t, p)["name"].(string))
	}
	sort.Strings(names)
	if want := sortedSet(scheduleListParams); !reflect.DeepEqual(names, want) {
		t.Errorf("schedule list parameters %v, want %v", names, want)
	}
}
