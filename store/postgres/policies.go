package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/terratask/terratask/store"
)

// policyLockClass is the first key of the advisory locks that serialise the
// writes of one policy (the second is a hash of its org and name).
const policyLockClass int32 = 0x7470_6f6c // "tpol"

// policyColumns are the stored columns of a policy version, in the order
// scanPolicy reads them. policyListColumns select an empty string in place
// of rego, which lists of versions leave out.
const (
	policyColumns     = `org, name, version, rego, description, sha256, source, deleted, created_by, created_at`
	policyListColumns = `org, name, version, '', description, sha256, source, deleted, created_by, created_at`
)

// scanPolicy reads a row of policyColumns or policyListColumns.
func scanPolicy(row pgx.Row) (store.Policy, error) {
	var (
		p       store.Policy
		version int32
	)
	if err := row.Scan(&p.Org, &p.Name, &version, &p.Rego, &p.Description, &p.SHA256, &p.Source, &p.Deleted,
		&p.CreatedBy, &p.CreatedAt); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return p, store.ErrNotFound
		}
		return p, err
	}
	p.Version, p.CreatedAt = int(version), p.CreatedAt.UTC()
	return p, nil
}

// latestPolicySQL selects the latest version of (org, name): the last
// entry of the primary key's index for the name.
const latestPolicySQL = `SELECT ` + policyColumns + ` FROM policies WHERE org = $1 AND name = $2 ORDER BY version DESC LIMIT 1`

// PutPolicy implements store.PolicyStore in one transaction holding the
// policy's advisory lock, so of concurrent puts of one name (in any
// replica) each reads the version the one before it wrote.
func (s *Store) PutPolicy(ctx context.Context, p store.Policy) (store.Policy, bool, error) {
	switch {
	case p.Org == "" || p.Name == "":
		return store.Policy{}, false, errors.New("postgres store: put policy: org and name are required")
	case p.SHA256 == "" && !p.Deleted:
		return store.Policy{}, false, fmt.Errorf("postgres store: put policy %s: sha256 is required", p.Name)
	}
	// As stored, so an unchanged put compares equal to what it reads.
	p.Org, p.Name, p.Rego, p.Description, p.SHA256 = txt(p.Org), txt(p.Name), txt(p.Rego), txt(p.Description), txt(p.SHA256)
	p.Source, p.CreatedBy = txt(p.Source), txt(p.CreatedBy)
	out, changed, err := s.writePolicy(ctx, p.Org, p.Name, func(latest store.Policy, has bool) (store.Policy, bool, error) {
		next, changed := store.NextPolicy(latest, has, p)
		return next, changed, nil
	})
	if err != nil {
		return store.Policy{}, false, fmt.Errorf("postgres store: put policy %s: %w", p.Name, err)
	}
	return out, changed, nil
}

// DeletePolicy implements store.PolicyStore, in one transaction as
// PutPolicy.
func (s *Store) DeletePolicy(ctx context.Context, org, name, by string) (store.Policy, error) {
	if org == "" || name == "" {
		return store.Policy{}, errors.New("postgres store: delete policy: org and name are required")
	}
	out, _, err := s.writePolicy(ctx, txt(org), txt(name), func(latest store.Policy, has bool) (store.Policy, bool, error) {
		if !has || latest.Deleted {
			return store.Policy{}, false, store.ErrNotFound
		}
		return store.PolicyDeletion(latest, txt(by)), true, nil
	})
	if err != nil {
		return store.Policy{}, fmt.Errorf("postgres store: delete policy %s: %w", name, err)
	}
	return out, nil
}

// writePolicy takes the advisory lock of (org, name) for a transaction,
// reads the latest version and passes it to next (has false: there is
// none), which returns the version to write and whether to write it; it
// writes that version, CreatedAt now, and returns it (or, when nothing is
// written, what next returned). Under READ COMMITTED the read, a statement
// after the lock, sees the version of the transaction that held it before.
func (s *Store) writePolicy(ctx context.Context, org, name string,
	next func(latest store.Policy, has bool) (store.Policy, bool, error),
) (store.Policy, bool, error) {
	var (
		out     store.Policy
		changed bool
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::integer, hashtext($2))`, policyLockClass, org+"\x1f"+name); err != nil {
			return err
		}
		latest, err := scanPolicy(tx.QueryRow(ctx, latestPolicySQL, org, name))
		has := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if out, changed, err = next(latest, has); err != nil || !changed {
			return err
		}
		version, err := int32Of("version", out.Version)
		if err != nil {
			return err
		}
		out.CreatedAt = dbTime(time.Now()).UTC()
		_, err = tx.Exec(ctx, `INSERT INTO policies (`+policyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			out.Org, out.Name, version, out.Rego, out.Description, out.SHA256, out.Source, out.Deleted, out.CreatedBy, out.CreatedAt)
		return err
	})
	if err != nil {
		return store.Policy{}, false, err
	}
	return out, changed, nil
}

// GetPolicy implements store.PolicyStore.
func (s *Store) GetPolicy(ctx context.Context, org, name string, version int) (store.Policy, error) {
	query, args := latestPolicySQL, []any{txt(org), txt(name)}
	if version != 0 {
		v, err := int32Of("version", version)
		if err != nil {
			return store.Policy{}, fmt.Errorf("postgres store: policy %s version %d: %w", name, version, store.ErrNotFound)
		}
		query, args = `SELECT `+policyColumns+` FROM policies WHERE org = $1 AND name = $2 AND version = $3`, append(args, v)
	}
	p, err := scanPolicy(s.pool.QueryRow(ctx, query, args...))
	if err == nil && p.Deleted {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Policy{}, fmt.Errorf("postgres store: policy %s version %d: %w", name, version, err)
	}
	return p, nil
}

// ListPolicies implements store.PolicyStore: for each name the first row
// of a walk of the primary key's index by name and descending version,
// kept unless deleted.
func (s *Store) ListPolicies(ctx context.Context, org string) ([]store.Policy, error) {
	return s.listPolicies(ctx, `SELECT `+policyColumns+` FROM (
			SELECT DISTINCT ON (name) `+policyColumns+` FROM policies WHERE org = $1 ORDER BY name, version DESC
		) AS latest WHERE NOT deleted ORDER BY name`, txt(org))
}

// PolicyVersions implements store.PolicyStore.
func (s *Store) PolicyVersions(ctx context.Context, org, name string) ([]store.Policy, error) {
	out, err := s.listPolicies(ctx, `SELECT `+policyListColumns+` FROM policies WHERE org = $1 AND name = $2 ORDER BY version DESC`,
		txt(org), txt(name))
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("postgres store: policy %s: %w", name, store.ErrNotFound)
	}
	return out, err
}

// listPolicies runs query, which selects policyColumns or policyListColumns;
// none is an empty list.
func (s *Store) listPolicies(ctx context.Context, query string, args ...any) ([]store.Policy, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: list policies: %w", err)
	}
	defer rows.Close()
	out := []store.Policy{}
	for rows.Next() {
		p, err := scanPolicy(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres store: list policies: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: list policies: %w", err)
	}
	return out, nil
}
