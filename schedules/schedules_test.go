package schedules

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/terratask/terratask/task"
)

func TestSpecValidate(t *testing.T) {
	for _, ok := range []Spec{
		{Cron: "0 2 * * *"}, {Cron: "*/15 8-18 * * MON-FRI", TimeZone: "America/New_York"}, {Cron: "@daily"},
		{Cron: "@every 90m"}, {Cron: "0 0 1 1 * 2030"}, {Cron: "30 0 2 * * * *"},
		{Interval: task.Duration(time.Second)}, {Interval: task.Duration(24 * time.Hour), Jitter: task.Duration(time.Minute)},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for spec, field := range map[*Spec]string{
		{}:                         "cron",
		{Cron: "0 2 * *"}:          "cron",
		{Cron: "0 24 * * *"}:       "cron",
		{Cron: "every day"}:        "cron",
		{Cron: "TZ=UTC 0 2 * * *"}: "cron",
		{Cron: "0 2 * * *", Interval: task.Duration(time.Hour)}: "interval",
		{Interval: task.Duration(time.Millisecond)}:             "interval",
		{Cron: "@daily", TimeZone: "Moon/Base"}:                 "time_zone",
		{Cron: "@daily", Jitter: -1}:                            "jitter",
	} {
		var se *SpecError
		if err := spec.Validate(); !errors.As(err, &se) || se.Field != field {
			t.Errorf("%+v: %v, want field %s", *spec, err, field)
		}
	}
}

func TestIDs(t *testing.T) {
	id := NewID()
	if !strings.HasPrefix(id, IDPrefix) || len(id) != len(IDPrefix)+26 || NewID() == id {
		t.Fatalf("NewID %s", id)
	}
	if a := ActionID(id); a != "task-"+strings.TrimPrefix(id, IDPrefix) || task.SafeName(a) != a {
		t.Fatalf("ActionID %s", a)
	}
	for _, o := range Overlaps {
		if !o.Valid() || o.policy() == 0 {
			t.Errorf("overlap %s", o)
		}
	}
	if Overlap("terminate_other").Valid() {
		t.Error("terminate_other is offered")
	}
}
