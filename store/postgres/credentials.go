package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/terratask/terratask/store"
)

// credentialLockClass is the first key of the advisory locks that
// serialise the writes of one credential set (the second is a hash of its
// org and name).
const credentialLockClass int32 = 0x7463_7264 // "tcrd"

// credentialColumns are the stored columns of a credential set, in the
// order scanCredentialSet reads them.
const credentialColumns = `org, name, description, sealed_env, env_names, sealed_variables, variable_names,
	agents, workspaces, runners, attach, oidc, created_by, created_at, updated_by, updated_at`

// scanCredentialSet reads a row of credentialColumns.
func scanCredentialSet(row pgx.Row) (store.CredentialSet, error) {
	var c store.CredentialSet
	if err := row.Scan(&c.Org, &c.Name, &c.Description, &c.SealedEnv, &c.EnvNames, &c.SealedVariables, &c.VariableNames,
		&c.Agents, &c.Workspaces, &c.Runners, &c.Attach, &c.OIDC, &c.CreatedBy, &c.CreatedAt, &c.UpdatedBy, &c.UpdatedAt); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return c, store.ErrNotFound
		}
		return c, err
	}
	for _, l := range []*[]string{&c.EnvNames, &c.VariableNames, &c.Agents, &c.Workspaces, &c.Runners} {
		if *l == nil {
			*l = []string{}
		}
	}
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, nil
}

// PutCredentialSet implements store.CredentialSetStore in one transaction
// holding the set's advisory lock, so of concurrent puts of one set (in any
// replica) each reads what the one before it wrote.
func (s *Store) PutCredentialSet(ctx context.Context, set store.CredentialSet, keep store.CredentialKeep) (store.CredentialSet, bool, error) {
	if set.Org == "" || set.Name == "" {
		return store.CredentialSet{}, false, errors.New("postgres store: put credential set: org and name are required")
	}
	// As stored, so what the put returns is what a read returns.
	set.Org, set.Name, set.Description = txt(set.Org), txt(set.Name), txt(set.Description)
	set.SealedEnv, set.SealedVariables, set.CreatedBy, set.UpdatedBy = txt(set.SealedEnv), txt(set.SealedVariables), txt(set.CreatedBy), txt(set.UpdatedBy)
	set.EnvNames, set.VariableNames = txts(set.EnvNames), txts(set.VariableNames)
	set.Agents, set.Workspaces, set.Runners = txts(set.Agents), txts(set.Workspaces), txts(set.Runners)
	if set.OIDC != nil {
		o := *set.OIDC
		for _, f := range []*string{&o.Provider, &o.Audience, &o.AWSRoleARN, &o.GCPWorkloadProvider, &o.GCPServiceAccount, &o.AzureClientID, &o.AzureTenantID} {
			*f = txt(*f)
		}
		set.OIDC = &o
	}
	var (
		out     store.CredentialSet
		created bool
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::integer, hashtext($2))`, credentialLockClass, set.Org+"\x1f"+set.Name); err != nil {
			return err
		}
		cur, err := scanCredentialSet(tx.QueryRow(ctx, `SELECT `+credentialColumns+` FROM credential_sets WHERE org = $1 AND name = $2`, set.Org, set.Name))
		has := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		created = !has
		out = store.ApplyCredentialPut(cur, has, set, keep)
		now := dbTime(time.Now()).UTC()
		if !has {
			out.CreatedAt = now
		}
		out.UpdatedAt = now
		_, err = tx.Exec(ctx, `INSERT INTO credential_sets (`+credentialColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
			ON CONFLICT (org, name) DO UPDATE SET description = excluded.description,
				sealed_env = excluded.sealed_env, env_names = excluded.env_names,
				sealed_variables = excluded.sealed_variables, variable_names = excluded.variable_names,
				agents = excluded.agents, workspaces = excluded.workspaces, runners = excluded.runners,
				attach = excluded.attach, oidc = excluded.oidc, updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
			out.Org, out.Name, out.Description, out.SealedEnv, out.EnvNames, out.SealedVariables, out.VariableNames,
			out.Agents, out.Workspaces, out.Runners, out.Attach, out.OIDC, out.CreatedBy, out.CreatedAt, out.UpdatedBy, out.UpdatedAt)
		return err
	})
	if err != nil {
		return store.CredentialSet{}, false, fmt.Errorf("postgres store: put credential set %s: %w", set.Name, err)
	}
	return out, created, nil
}

// GetCredentialSet implements store.CredentialSetStore.
func (s *Store) GetCredentialSet(ctx context.Context, org, name string) (store.CredentialSet, error) {
	c, err := scanCredentialSet(s.pool.QueryRow(ctx, `SELECT `+credentialColumns+` FROM credential_sets WHERE org = $1 AND name = $2`, txt(org), txt(name)))
	if err != nil {
		return store.CredentialSet{}, fmt.Errorf("postgres store: credential set %s: %w", name, err)
	}
	return c, nil
}

// ListCredentialSets implements store.CredentialSetStore.
func (s *Store) ListCredentialSets(ctx context.Context, org string) ([]store.CredentialSet, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+credentialColumns+` FROM credential_sets WHERE org = $1 ORDER BY name`, txt(org))
	if err != nil {
		return nil, fmt.Errorf("postgres store: list credential sets: %w", err)
	}
	defer rows.Close()
	out := []store.CredentialSet{}
	for rows.Next() {
		c, err := scanCredentialSet(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres store: list credential sets: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: list credential sets: %w", err)
	}
	return out, nil
}

// DeleteCredentialSet implements store.CredentialSetStore.
func (s *Store) DeleteCredentialSet(ctx context.Context, org, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM credential_sets WHERE org = $1 AND name = $2`, txt(org), txt(name))
	if err == nil {
		err = oneRow(tag)
	}
	if err != nil {
		return fmt.Errorf("postgres store: delete credential set %s: %w", name, err)
	}
	return nil
}
