package store

import (
	"context"
	"time"
)

// Policy is one version of one policy of an org: a Rego v1 module (package
// policy compiles and evaluates it). Every change of a policy is a new
// version, numbered from 1 per (Org, Name); deleting one is a version too
// (Deleted), so the numbers of a name never repeat and a task's check
// names exactly what it evaluated.
type Policy struct {
	Org  string
	Name string
	// Version is assigned by the store.
	Version     int
	Rego        string
	Description string
	// SHA256 is the hex SHA-256 of Rego.
	SHA256 string
	// Source is "api" for a policy written through the API, "dir:PATH" for
	// one loaded from --policy-dir.
	Source  string
	Deleted bool
	// CreatedBy is the key (or "policy-dir") that wrote the version;
	// CreatedAt is assigned by the store.
	CreatedBy string
	CreatedAt time.Time
}

// PolicyStore keeps the orgs' policies and every version of each.
type PolicyStore interface {
	// PutPolicy writes p as the next version of (p.Org, p.Name) and
	// returns it, Version and CreatedAt set, with changed true. When the
	// current version is not deleted and has the same SHA256, Description
	// and Source, nothing is written: it returns the current version and
	// false. Concurrent puts of one name get distinct versions (NextPolicy
	// applied to the latest version under a lock of the name). Org and
	// Name are required, and so is SHA256 unless p is Deleted (a put of a
	// deleted version writes one, as DeletePolicy does, but without its
	// check that there is something to delete).
	PutPolicy(ctx context.Context, p Policy) (Policy, bool, error)
	// DeletePolicy writes a deleted version of (org, name) by key by and
	// returns it; ErrNotFound when the policy has no current version (it
	// never existed, or its latest version is deleted). The deleted
	// version has no Rego, SHA256 or Description; its Source is the
	// deleted version's, so a deletion stays attributed to where the
	// policy came from (By says who deleted it).
	DeletePolicy(ctx context.Context, org, name, by string) (Policy, error)
	// GetPolicy returns version of (org, name), 0 meaning the latest; a
	// latest version that is deleted is ErrNotFound, and so is a version
	// that does not exist. An older version is returned even when deleted
	// later. A deleted version itself (a deletion's record, without Rego)
	// is ErrNotFound whichever version asks for it: PolicyVersions lists
	// those.
	GetPolicy(ctx context.Context, org, name string, version int) (Policy, error)
	// ListPolicies returns the latest version of each of org's policies
	// that is not deleted, by name, Rego included.
	ListPolicies(ctx context.Context, org string) ([]Policy, error)
	// PolicyVersions returns every version of (org, name), newest first,
	// without Rego; ErrNotFound when it has none.
	PolicyVersions(ctx context.Context, org, name string) ([]Policy, error)
}

// NextPolicy is PutPolicy's rule, which every PolicyStore applies to the
// latest version of (p.Org, p.Name) it read under a lock that orders it
// with every other write of that name (has false: the name has no version
// yet). It returns the version to write, p numbered one past latest, and
// true; or latest and false when p would change nothing: latest is not
// deleted, p is not a deletion, and SHA256, Description and Source are
// latest's. The store assigns CreatedAt.
func NextPolicy(latest Policy, has bool, p Policy) (Policy, bool) {
	if has && !latest.Deleted && !p.Deleted &&
		latest.SHA256 == p.SHA256 && latest.Description == p.Description && latest.Source == p.Source {
		return latest, false
	}
	next := p
	next.Version, next.CreatedAt = 1, time.Time{}
	if has {
		next.Version = latest.Version + 1
	}
	return next, true
}

// PolicyDeletion is the deleted version DeletePolicy writes after latest,
// the current version of its policy, by key by (see DeletePolicy).
func PolicyDeletion(latest Policy, by string) Policy {
	return Policy{Org: latest.Org, Name: latest.Name, Version: latest.Version + 1, Source: latest.Source, Deleted: true, CreatedBy: by}
}
