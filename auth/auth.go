// Package auth holds terratask's API keys: a keyring loaded from a keys file
// that stores only SHA-256 hashes, each key with a name, an org, a role and
// an optional agent binding, and the permission rules of each role.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Role is what a key may do.
type Role string

// Roles, each allowed everything the one before it is.
const (
	RoleViewer   Role = "viewer"   // read
	RoleOperator Role = "operator" // read, create, cancel, approve or reject plans, grant workspaces
	RoleAdmin    Role = "admin"    // everything, including force-cancel and state
)

// Action is something a request does.
type Action int

// Actions checked against a role.
const (
	ActionRead Action = iota
	ActionCreate
	ActionCancel
	ActionForceCancel
	// ActionReadState reads a workspace's Terraform state document, which
	// holds every value Terraform knows in plain text.
	ActionReadState
	// ActionWriteState writes a workspace's state or takes and releases its
	// lock, or breaks it.
	ActionWriteState
	// ActionManageWebhooks creates, lists and deletes webhooks, reads their
	// delivery logs and the org's signing secret.
	ActionManageWebhooks
	// ActionDecide approves or rejects a task's plan (never with a key
	// bound to an agent; see the approval routes for four eyes).
	ActionDecide
	// ActionGrantWorkspace sets which agents may use a workspace (never
	// with a key bound to an agent).
	ActionGrantWorkspace
	// ActionManagePolicies writes, deletes and reads the org's policies
	// (admin only).
	ActionManagePolicies
	// numActions counts the actions: a new one goes above it (the role
	// table's test covers every action below it).
	numActions
)

// Allows reports whether the role permits the action.
func (r Role) Allows(a Action) bool {
	switch r {
	case RoleAdmin:
		return true
	case RoleOperator:
		return a == ActionRead || a == ActionCreate || a == ActionCancel || a == ActionDecide || a == ActionGrantWorkspace
	case RoleViewer:
		return a == ActionRead
	}
	return false
}

func (r Role) valid() bool { return r == RoleViewer || r == RoleOperator || r == RoleAdmin }

// Key is one entry of a keys file. Hash is "sha256:<hex>" of the raw key.
type Key struct {
	Name  string `json:"name" yaml:"name"`
	Org   string `json:"org" yaml:"org"`
	Role  Role   `json:"role" yaml:"role"`
	Agent string `json:"agent,omitempty" yaml:"agent,omitempty"`
	Hash  string `json:"hash" yaml:"hash"`
}

// Principal is the authenticated caller.
type Principal struct {
	Name  string
	Org   string
	Role  Role
	Agent string // when set, the key only sees and creates this agent's tasks
}

// CanSeeAgent reports whether the principal may see tasks of agent.
func (p Principal) CanSeeAgent(agent string) bool { return p.Agent == "" || p.Agent == agent }

// HashKey returns the keys-file hash of a raw key.
func HashKey(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// GenerateKey returns a new random raw key.
func GenerateKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "tt_" + base64.RawURLEncoding.EncodeToString(b), nil
}

type entry struct {
	key  Key
	hash [sha256.Size]byte
}

// Keyring authenticates raw keys. It is safe for concurrent use and can be
// replaced whole (Replace) when the keys file is reloaded.
type Keyring struct {
	mu      sync.RWMutex
	entries []entry
}

// NewKeyring builds a keyring from keys, validating each.
func NewKeyring(keys []Key) (*Keyring, error) {
	k := &Keyring{}
	if err := k.Replace(keys); err != nil {
		return nil, err
	}
	return k, nil
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9@._:+-]{1,128}$`)

// ValidName reports whether s may be a key's name or org: 1 to 128 ASCII
// letters, digits and @._:+-.
func ValidName(s string) bool { return namePattern.MatchString(s) }

// Replace swaps the keyring's keys after validating all of them.
func (k *Keyring) Replace(keys []Key) error {
	entries := make([]entry, 0, len(keys))
	names := map[string]bool{}
	for i, key := range keys {
		if !namePattern.MatchString(key.Name) {
			return fmt.Errorf("key %d: name %q must be 1-128 characters of letters, digits and @._:+-", i, key.Name)
		}
		if names[key.Name] {
			return fmt.Errorf("key %d: duplicate name %q", i, key.Name)
		}
		names[key.Name] = true
		if !namePattern.MatchString(key.Org) {
			return fmt.Errorf("key %q: org %q must be 1-128 characters of letters, digits and @._:+-", key.Name, key.Org)
		}
		if !key.Role.valid() {
			return fmt.Errorf("key %q: role %q must be viewer, operator or admin", key.Name, key.Role)
		}
		hexHash, ok := strings.CutPrefix(key.Hash, "sha256:")
		raw, err := hex.DecodeString(hexHash)
		if !ok || err != nil || len(raw) != sha256.Size {
			return fmt.Errorf("key %q: hash must be sha256:<64 hex digits> (see `terratask keys hash`)", key.Name)
		}
		e := entry{key: key}
		copy(e.hash[:], raw)
		entries = append(entries, e)
	}
	k.mu.Lock()
	k.entries = entries
	k.mu.Unlock()
	return nil
}

// Authenticate returns the principal of a raw key. Every stored hash is
// compared in constant time, so timing tells nothing about which matched. A
// nil keyring knows no key.
func (k *Keyring) Authenticate(raw string) (Principal, bool) {
	if k == nil || raw == "" {
		return Principal{}, false
	}
	sum := sha256.Sum256([]byte(raw))
	k.mu.RLock()
	defer k.mu.RUnlock()
	var found *Key
	for i := range k.entries {
		if subtle.ConstantTimeCompare(sum[:], k.entries[i].hash[:]) == 1 {
			found = &k.entries[i].key
		}
	}
	if found == nil {
		return Principal{}, false
	}
	return Principal{Name: found.Name, Org: found.Org, Role: found.Role, Agent: found.Agent}, true
}

// File is the keys file format (YAML or JSON).
type File struct {
	Keys []Key `json:"keys" yaml:"keys"`
}

// LoadFile reads a keys file: JSON when it ends in .json, YAML otherwise.
func LoadFile(path string) ([]Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading keys file: %w", err)
	}
	var f File
	if strings.EqualFold(filepath.Ext(path), ".json") {
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		err = dec.Decode(&f)
	} else {
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		err = dec.Decode(&f)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing keys file %s: %w", path, err)
	}
	if len(f.Keys) == 0 {
		return nil, errors.New("keys file holds no keys")
	}
	return f.Keys, nil
}

// LoadOrCreateDevKey returns the dev admin key: env when set, else the key in
// path, else a new key written to path (0600). created reports a new key.
func LoadOrCreateDevKey(env, path string) (key string, created bool, err error) {
	if env != "" {
		return env, false, nil
	}
	if b, err := os.ReadFile(path); err == nil {
		if k := strings.TrimSpace(string(b)); k != "" {
			return k, false, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("reading dev key: %w", err)
	}
	k, err := GenerateKey()
	if err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("writing dev key: %w", err)
	}
	return k, true, nil
}
