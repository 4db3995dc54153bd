package task

import (
	"fmt"
	"hash/fnv"
	"slices"
)

// Engines lists every engine a task may name.
var Engines = []Engine{EngineTerraform, EngineOpenTofu}

// Valid reports whether e is a known engine.
func (e Engine) Valid() bool { return slices.Contains(Engines, e) }

// Binary is the engine's command name.
func (e Engine) Binary() string {
	if e == EngineOpenTofu {
		return "tofu"
	}
	return "terraform"
}

// DisplayName is how logs and errors name the engine.
func (e Engine) DisplayName() string {
	if e == EngineOpenTofu {
		return "OpenTofu"
	}
	return "Terraform"
}

// EffectiveVersion is the version the task pins for its engine ("" = any):
// tofu_version for OpenTofu, terraform_version for Terraform.
func (p Params) EffectiveVersion() string {
	if p.EffectiveEngine() == EngineOpenTofu {
		return p.TofuVersion
	}
	return p.TerraformVersion
}

// EngineInfo is what a runner host offers of one engine: the versions it
// can run now, and for Terraform whether it may download others.
type EngineInfo struct {
	Engine   Engine   `json:"engine"`
	Versions []string `json:"versions"`
	// Download is true when the host installs versions it lacks (Terraform
	// only: OpenTofu is never downloaded).
	Download bool `json:"download"`
}

// SafeName turns a task ID into a name that may be one path component and a
// workspace name: letters, digits, '.', '_' and '-'. IDs that already are
// such a name are kept. Others (the ID of a task started by a schedule ends
// in an RFC 3339 time, "task-...-2026-01-02T03:04:05Z") lose their other
// characters and gain a short hash of the ID, so two IDs never share a name.
// It returns "" for an ID with no usable character.
func SafeName(id string) string {
	ok := id != "" && len(id) <= 128 && id[0] != '.' && id[0] != '_' && id[0] != '-'
	for i := 0; ok && i < len(id); i++ {
		ok = isNameChar(id[i])
	}
	if ok {
		return id
	}
	b := make([]byte, 0, len(id))
	for i := 0; i < len(id); i++ {
		if isNameChar(id[i]) {
			b = append(b, id[i])
		}
	}
	for len(b) > 0 && (b[0] == '.' || b[0] == '_' || b[0] == '-') {
		b = b[1:]
	}
	if len(b) == 0 {
		return ""
	}
	if len(b) > 110 {
		b = b[:110]
	}
	return string(b) + "-" + shortHash(id)
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// shortHash is 8 hex digits of FNV-1a of s: enough to tell apart the few IDs
// that could lose the same characters; not a security measure.
func shortHash(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}
