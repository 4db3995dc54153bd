package task

import (
	"strings"
	"testing"
)

func TestSafeName(t *testing.T) {
	for _, id := range []string{"task-abc", "task-abc.1_x", "A"} {
		if got := SafeName(id); got != id {
			t.Errorf("SafeName(%q) = %q, want it unchanged", id, got)
		}
	}
	a, b := SafeName("task-x-2026-01-02T03:04:05Z"), SafeName("task-x-2026-01-02T030405Z")
	if !strings.HasPrefix(a, "task-x-2026-01-02T030405Z-") || strings.ContainsAny(a, ":/") || a == b {
		t.Errorf("scheduled IDs: %q and %q", a, b)
	}
	if SafeName("task-x-2026-01-02T03:04:05Z") != a {
		t.Error("SafeName is not a function of the ID")
	}
	for _, id := range []string{"", ":::", "../../etc", strings.Repeat("a", 200)} {
		s := SafeName(id)
		if strings.ContainsAny(s, "/:") || s == "." || s == ".." || len(s) > 128 || (s != "" && (s[0] == '.' || s[0] == '-')) {
			t.Errorf("SafeName(%q) = %q", id, s)
		}
	}
}

func TestEngines(t *testing.T) {
	var p Params
	if p.EffectiveEngine() != EngineTerraform || !EngineOpenTofu.Valid() || Engine("pulumi").Valid() || EngineOpenTofu.Binary() != "tofu" {
		t.Fatal("engines")
	}
	p.Engine, p.TofuVersion, p.TerraformVersion = EngineOpenTofu, "1.6.3", "1.11.4"
	if p.EffectiveVersion() != "1.6.3" {
		t.Fatal("tofu version")
	}
}
