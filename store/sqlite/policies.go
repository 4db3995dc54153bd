package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/terratask/terratask/store"
)

// policyColumns are the stored columns of a policy version, in the order
// scanPolicy reads them. policyListColumns select an empty string in place
// of rego, which lists of versions leave out.
const (
	policyColumns     = `org, name, version, rego, description, sha256, source, deleted, created_by, created_at`
	policyListColumns = `org, name, version, '', description, sha256, source, deleted, created_by, created_at`
)

// scanPolicy reads a row of policyColumns or policyListColumns.
func scanPolicy(sc scanner) (store.Policy, error) {
	var (
		p       store.Policy
		deleted int
		created int64
	)
	if err := sc.Scan(&p.Org, &p.Name, &p.Version, &p.Rego, &p.Description, &p.SHA256, &p.Source, &deleted,
		&p.CreatedBy, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return p, store.ErrNotFound
		}
		return p, err
	}
	p.Deleted, p.CreatedAt = deleted != 0, goTime(created)
	return p, nil
}

// latestPolicySQL selects the latest version of (org, name): the last
// entry of the primary key's index for the name.
const latestPolicySQL = `SELECT ` + policyColumns + ` FROM policies WHERE org = ? AND name = ? ORDER BY version DESC LIMIT 1`

// PutPolicy implements store.PolicyStore in one write transaction: SQLite's
// single writer (and BEGIN IMMEDIATE across processes) orders it with every
// other write, so the latest version it reads is still the latest when it
// writes the next.
func (s *Store) PutPolicy(ctx context.Context, p store.Policy) (store.Policy, bool, error) {
	switch {
	case p.Org == "" || p.Name == "":
		return store.Policy{}, false, errors.New("sqlite store: put policy: org and name are required")
	case p.SHA256 == "" && !p.Deleted:
		return store.Policy{}, false, fmt.Errorf("sqlite store: put policy %s: sha256 is required", p.Name)
	}
	out, changed, err := s.writePolicy(ctx, p.Org, p.Name, func(latest store.Policy, has bool) (store.Policy, bool, error) {
		next, changed := store.NextPolicy(latest, has, p)
		return next, changed, nil
	})
	if err != nil {
		return store.Policy{}, false, fmt.Errorf("sqlite store: put policy %s: %w", p.Name, err)
	}
	return out, changed, nil
}

// DeletePolicy implements store.PolicyStore, in one write transaction as
// PutPolicy.
func (s *Store) DeletePolicy(ctx context.Context, org, name, by string) (store.Policy, error) {
	if org == "" || name == "" {
		return store.Policy{}, errors.New("sqlite store: delete policy: org and name are required")
	}
	out, _, err := s.writePolicy(ctx, org, name, func(latest store.Policy, has bool) (store.Policy, bool, error) {
		if !has || latest.Deleted {
			return store.Policy{}, false, store.ErrNotFound
		}
		return store.PolicyDeletion(latest, by), true, nil
	})
	if err != nil {
		return store.Policy{}, fmt.Errorf("sqlite store: delete policy %s: %w", name, err)
	}
	return out, nil
}

// writePolicy reads the latest version of (org, name) in a write
// transaction and passes it to next (has false: there is none), which
// returns the version to write and whether to write it; it writes that
// version, CreatedAt now, and returns it (or, when nothing is written,
// what next returned).
func (s *Store) writePolicy(ctx context.Context, org, name string,
	next func(latest store.Policy, has bool) (store.Policy, bool, error),
) (store.Policy, bool, error) {
	var (
		out     store.Policy
		changed bool
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		latest, err := scanPolicy(tx.QueryRowContext(ctx, latestPolicySQL, org, name))
		has := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if out, changed, err = next(latest, has); err != nil || !changed {
			return err
		}
		out.CreatedAt = goTime(dbTime(time.Now()))
		deleted := 0
		if out.Deleted {
			deleted = 1
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO policies (`+policyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			out.Org, out.Name, out.Version, out.Rego, out.Description, out.SHA256, out.Source, deleted,
			out.CreatedBy, dbTime(out.CreatedAt))
		return err
	})
	if err != nil {
		return store.Policy{}, false, err
	}
	return out, changed, nil
}

// GetPolicy implements store.PolicyStore.
func (s *Store) GetPolicy(ctx context.Context, org, name string, version int) (store.Policy, error) {
	query, args := latestPolicySQL, []any{org, name}
	if version != 0 {
		query, args = `SELECT `+policyColumns+` FROM policies WHERE org = ? AND name = ? AND version = ?`, append(args, version)
	}
	var p store.Policy
	err := s.rst.queryRow(ctx, query, args, func(r *sql.Row) (err error) {
		p, err = scanPolicy(r)
		return err
	})
	if err == nil && p.Deleted {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Policy{}, fmt.Errorf("sqlite store: policy %s version %d: %w", name, version, err)
	}
	return p, nil
}

// ListPolicies implements store.PolicyStore: for each name the last entry
// of the primary key's index, kept unless deleted.
func (s *Store) ListPolicies(ctx context.Context, org string) ([]store.Policy, error) {
	return s.listPolicies(ctx, `SELECT `+policyColumns+` FROM policies AS p WHERE org = ?
		AND version = (SELECT max(version) FROM policies WHERE org = p.org AND name = p.name)
		AND deleted = 0 ORDER BY name`, org)
}

// PolicyVersions implements store.PolicyStore.
func (s *Store) PolicyVersions(ctx context.Context, org, name string) ([]store.Policy, error) {
	out, err := s.listPolicies(ctx, `SELECT `+policyListColumns+` FROM policies WHERE org = ? AND name = ? ORDER BY version DESC`, org, name)
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("sqlite store: policy %s: %w", name, store.ErrNotFound)
	}
	return out, err
}

// listPolicies runs query, which selects policyColumns or policyListColumns;
// none is an empty list.
func (s *Store) listPolicies(ctx context.Context, query string, args ...any) ([]store.Policy, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list policies: %w", err)
	}
	defer rows.Close()
	out := []store.Policy{}
	for rows.Next() {
		p, err := scanPolicy(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: list policies: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: list policies: %w", err)
	}
	return out, nil
}
