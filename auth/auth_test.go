package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRolesAllow(t *testing.T) {
	want := map[Role][]bool{ // read, create, cancel, force
		RoleViewer:   {true, false, false, false},
		RoleOperator: {true, true, true, false},
		RoleAdmin:    {true, true, true, true},
		"nobody":     {false, false, false, false},
	}
	for role, allowed := range want {
		for a, ok := range allowed {
			if role.Allows(Action(a)) != ok {
				t.Errorf("%s action %d: got %v", role, a, !ok)
			}
		}
	}
}

func TestRolesGrantWorkspaces(t *testing.T) {
	for role, want := range map[Role]bool{RoleViewer: false, RoleOperator: true, RoleAdmin: true, "nobody": false} {
		if role.Allows(ActionGrantWorkspace) != want {
			t.Errorf("%s grants workspaces: %v, want %v", role, !want, want)
		}
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
