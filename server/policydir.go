package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/terratask/terratask/controlplane"
	"github.com/terratask/terratask/policy"
	"github.com/terratask/terratask/store"
)

// PolicyDir is one --policy-dir: an org's policies kept in a directory (a
// git checkout, typically), loaded at start and on SIGHUP.
type PolicyDir struct {
	Org string
	Dir string
}

// DefaultPolicyOrg is the org of a --policy-dir given without ORG=: dev's
// admin key's org.
const DefaultPolicyOrg = "default"

// ParsePolicyDir reads "ORG=DIR", or "DIR" for org DefaultPolicyOrg.
func ParsePolicyDir(v string) (PolicyDir, error) {
	org, dir, ok := strings.Cut(v, "=")
	if !ok {
		org, dir = DefaultPolicyOrg, v
	}
	if strings.TrimSpace(org) == "" || strings.TrimSpace(dir) == "" {
		return PolicyDir{}, fmt.Errorf("--policy-dir %q: want ORG=DIR (or DIR for org %s)", v, DefaultPolicyOrg)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return PolicyDir{}, fmt.Errorf("--policy-dir %q: %w", v, err)
	}
	return PolicyDir{Org: org, Dir: abs}, nil
}

// PolicySync says what one sync of a policy directory changed.
type PolicySync struct {
	Org                                  string
	Created, Updated, Unchanged, Deleted []string
}

func (s PolicySync) String() string {
	return fmt.Sprintf("org %s: %d created, %d updated, %d unchanged, %d deleted", s.Org,
		len(s.Created), len(s.Updated), len(s.Unchanged), len(s.Deleted))
}

// SyncPolicyDir makes the org's policies from d.Dir what the directory
// holds: a changed file is a new version, a removed file deletes the policy
// it loaded. The directory owns its policies: the API may not change them
// (409), and a file named like a policy written through the API takes it
// over. A directory whose modules do not compile together with the org's
// other policies changes nothing (the error says where). Several servers
// syncing the same directory write each change once (store.PolicyStore's
// unchanged puts write nothing).
func SyncPolicyDir(ctx context.Context, st store.PolicyStore, d PolicyDir) (PolicySync, error) {
	out := PolicySync{Org: d.Org}
	files, err := policy.LoadDir(d.Dir)
	if err != nil {
		return out, err
	}
	source := policySourceDir + d.Dir
	cur, err := st.ListPolicies(ctx, d.Org)
	if err != nil {
		return out, err
	}
	inDir := map[string]bool{}
	var mods []policy.Module
	for _, f := range files {
		inDir[f.Name] = true
		mods = append(mods, policy.Module{Name: f.Name, SHA256: policy.Digest(f.Rego), Rego: f.Rego})
	}
	current := map[string]store.Policy{}
	for _, p := range cur {
		current[p.Name] = p
		if !inDir[p.Name] && p.Source != source {
			mods = append(mods, controlplane.ModuleOf(p))
		}
	}
	if _, err := policy.Compile(mods); err != nil {
		return out, fmt.Errorf("--policy-dir %s: the org's policies would not compile, nothing changed: %w", d.Dir, err)
	}
	for _, f := range files {
		p, changed, err := st.PutPolicy(ctx, store.Policy{Org: d.Org, Name: f.Name, Rego: f.Rego, SHA256: policy.Digest(f.Rego),
			Description: "loaded from " + f.Path, Source: source, CreatedBy: "policy-dir"})
		if err != nil {
			return out, err
		}
		switch {
		case !changed:
			out.Unchanged = append(out.Unchanged, f.Name)
		case p.Version == 1 || current[f.Name].Name == "":
			out.Created = append(out.Created, f.Name)
		default:
			out.Updated = append(out.Updated, f.Name)
		}
	}
	for _, p := range cur {
		if inDir[p.Name] || p.Source != source {
			continue
		}
		if _, err := st.DeletePolicy(ctx, d.Org, p.Name, "policy-dir"); err != nil && !errors.Is(err, store.ErrNotFound) {
			return out, err
		}
		out.Deleted = append(out.Deleted, p.Name)
	}
	return out, nil
}
