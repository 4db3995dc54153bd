package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRolesAllow: every action, by every role (and a role no key has).
func TestRolesAllow(t *testing.T) {
	roles := []Role{RoleViewer, RoleOperator, RoleAdmin, "nobody"}
	table := map[Action]struct {
		name string
		want []bool // viewer, operator, admin, nobody
	}{
		ActionRead:           {"read", []bool{true, true, true, false}},
		ActionCreate:         {"create", []bool{false, true, true, false}},
		ActionCancel:         {"cancel", []bool{false, true, true, false}},
		ActionForceCancel:    {"force-cancel", []bool{false, false, true, false}},
		ActionReadState:      {"read state", []bool{false, false, true, false}},
		ActionWriteState:     {"write state", []bool{false, false, true, false}},
		ActionManageWebhooks: {"manage webhooks", []bool{false, false, true, false}},
		ActionDecide:         {"decide", []bool{false, true, true, false}},
		ActionGrantWorkspace: {"grant workspaces", []bool{false, true, true, false}},
		ActionManagePolicies: {"manage policies", []bool{false, false, true, false}},
	}
	for a := range numActions {
		row, ok := table[a]
		if !ok {
			t.Errorf("action %d has no row in the role table", a)
			continue
		}
		for i, role := range roles {
			if got := role.Allows(a); got != row.want[i] {
				t.Errorf("%s may %s: %v, want %v", role, row.name, got, row.want[i])
			}
		}
	}
	if len(table) != int(numActions) {
		t.Errorf("the role table has %d rows for %d actions", len(table), numActions)
	}
}

func TestKeyringAuthenticates(t *testing.T) {
	raw, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKeyring([]Key{
		{Name: "ops", Org: "acme", Role: RoleOperator, Agent: "agent-1", Hash: HashKey(raw)},
		{Name: "view", Org: "acme", Role: RoleViewer, Hash: HashKey("other")},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, ok := k.Authenticate(raw)
	if !ok || p.Name != "ops" || p.Org != "acme" || p.Role != RoleOperator || p.Agent != "agent-1" {
		t.Fatalf("%+v %v", p, ok)
	}
	if !p.CanSeeAgent("agent-1") || p.CanSeeAgent("agent-2") {
		t.Fatal("agent binding")
	}
	for _, bad := range []string{"", raw + "x", strings.ToUpper(raw), HashKey(raw)} {
		if _, ok := k.Authenticate(bad); ok {
			t.Fatalf("authenticated %q", bad)
		}
	}
}

func TestKeyringRejectsBadEntries(t *testing.T) {
	good := Key{Name: "a", Org: "o", Role: RoleAdmin, Hash: HashKey("k")}
	for name, mutate := range map[string]func(*Key){
		"no name":    func(k *Key) { k.Name = "" },
		"bad org":    func(k *Key) { k.Org = "a b" },
		"bad role":   func(k *Key) { k.Role = "root" },
		"plain key":  func(k *Key) { k.Hash = "k" },
		"short hash": func(k *Key) { k.Hash = "sha256:abcd" },
		"no prefix":  func(k *Key) { k.Hash = strings.TrimPrefix(HashKey("k"), "sha256:") },
	} {
		k := good
		mutate(&k)
		if _, err := NewKeyring([]Key{k}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewKeyring([]Key{good, good}); err == nil {
		t.Error("duplicate names accepted")
	}
}

func TestLoadFileYAMLAndJSON(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "keys.yaml")
	os.WriteFile(yml, []byte("keys:\n  - name: ci\n    org: acme\n    role: operator\n    hash: "+HashKey("k1")+"\n"), 0o600)
	js := filepath.Join(dir, "keys.json")
	os.WriteFile(js, []byte(`{"keys":[{"name":"ci","org":"acme","role":"admin","hash":"`+HashKey("k2")+`"}]}`), 0o600)
	for path, role := range map[string]Role{yml: RoleOperator, js: RoleAdmin} {
		keys, err := LoadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0].Role != role {
			t.Fatalf("%s: %+v", path, keys)
		}
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("keys:\n  - name: ci\n    secret: plain\n"), 0o600)
	if _, err := LoadFile(bad); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestDevKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d", "api-key")
	k1, created, err := LoadOrCreateDevKey("", path)
	if err != nil || !created || k1 == "" {
		t.Fatal(k1, created, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	k2, created, _ := LoadOrCreateDevKey("", path)
	if k2 != k1 || created {
		t.Fatal("dev key not reused")
	}
	if k3, _, _ := LoadOrCreateDevKey("from-env", path); k3 != "from-env" {
		t.Fatal("env key ignored")
	}
}
