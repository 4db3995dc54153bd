package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/terratask/terratask/store"
)

// credentialColumns are the stored columns of a credential set, in the
// order scanCredentialSet reads them.
const credentialColumns = `org, name, description, sealed_env, env_names, sealed_variables, variable_names,
	agents, workspaces, runners, attach, oidc, created_by, created_at, updated_by, updated_at`

// scanCredentialSet reads a row of credentialColumns.
func scanCredentialSet(sc scanner) (store.CredentialSet, error) {
	var (
		c                                            store.CredentialSet
		envNames, varNames, agents, workspaces, runs string
		attach                                       int
		oidc                                         sql.NullString
		created, updated                             int64
	)
	if err := sc.Scan(&c.Org, &c.Name, &c.Description, &c.SealedEnv, &envNames, &c.SealedVariables, &varNames,
		&agents, &workspaces, &runs, &attach, &oidc, &c.CreatedBy, &created, &c.UpdatedBy, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return c, store.ErrNotFound
		}
		return c, err
	}
	for _, l := range []struct {
		raw string
		to  *[]string
	}{{envNames, &c.EnvNames}, {varNames, &c.VariableNames}, {agents, &c.Agents}, {workspaces, &c.Workspaces}, {runs, &c.Runners}} {
		if err := json.Unmarshal([]byte(l.raw), l.to); err != nil {
			return c, fmt.Errorf("credential set %s: decode a list: %w", c.Name, err)
		}
		if *l.to == nil {
			*l.to = []string{}
		}
	}
	if oidc.Valid {
		c.OIDC = new(store.CredentialOIDC)
		if err := json.Unmarshal([]byte(oidc.String), c.OIDC); err != nil {
			return c, fmt.Errorf("credential set %s: decode oidc: %w", c.Name, err)
		}
	}
	c.Attach, c.CreatedAt, c.UpdatedAt = attach != 0, goTime(created), goTime(updated)
	return c, nil
}

// listJSON is a list as stored: a JSON array, '[]' for none.
func listJSON(xs []string) (string, error) {
	if len(xs) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(xs)
	return string(b), err
}

// PutCredentialSet implements store.CredentialSetStore in one write
// transaction: SQLite's single writer orders it with every other write, so
// the values a put keeps are the latest.
func (s *Store) PutCredentialSet(ctx context.Context, set store.CredentialSet, keep store.CredentialKeep) (store.CredentialSet, bool, error) {
	if set.Org == "" || set.Name == "" {
		return store.CredentialSet{}, false, errors.New("sqlite store: put credential set: org and name are required")
	}
	var (
		out     store.CredentialSet
		created bool
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := scanCredentialSet(tx.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM credential_sets WHERE org = ? AND name = ?`, set.Org, set.Name))
		has := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		created = !has
		out = store.ApplyCredentialPut(cur, has, set, keep)
		now := goTime(dbTime(time.Now()))
		if !has {
			out.CreatedAt = now
		}
		out.UpdatedAt = now
		lists := make([]any, 0, 5)
		for _, l := range [][]string{out.EnvNames, out.VariableNames, out.Agents, out.Workspaces, out.Runners} {
			j, err := listJSON(l)
			if err != nil {
				return err
			}
			lists = append(lists, j)
		}
		var oidc any
		if out.OIDC != nil {
			b, err := json.Marshal(out.OIDC)
			if err != nil {
				return err
			}
			oidc = string(b)
		}
		attach := 0
		if out.Attach {
			attach = 1
		}
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO credential_sets (`+credentialColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			out.Org, out.Name, out.Description, out.SealedEnv, lists[0], out.SealedVariables, lists[1],
			lists[2], lists[3], lists[4], attach, oidc, out.CreatedBy, dbTime(out.CreatedAt), out.UpdatedBy, dbTime(out.UpdatedAt))
		return err
	})
	if err != nil {
		return store.CredentialSet{}, false, fmt.Errorf("sqlite store: put credential set %s: %w", set.Name, err)
	}
	return out, created, nil
}

// GetCredentialSet implements store.CredentialSetStore.
func (s *Store) GetCredentialSet(ctx context.Context, org, name string) (store.CredentialSet, error) {
	var c store.CredentialSet
	err := s.rst.queryRow(ctx, `SELECT `+credentialColumns+` FROM credential_sets WHERE org = ? AND name = ?`, []any{org, name},
		func(r *sql.Row) (err error) {
			c, err = scanCredentialSet(r)
			return err
		})
	if err != nil {
		return store.CredentialSet{}, fmt.Errorf("sqlite store: credential set %s: %w", name, err)
	}
	return c, nil
}

// ListCredentialSets implements store.CredentialSetStore.
func (s *Store) ListCredentialSets(ctx context.Context, org string) ([]store.CredentialSet, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+credentialColumns+` FROM credential_sets WHERE org = ? ORDER BY name`, org)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list credential sets: %w", err)
	}
	defer rows.Close()
	out := []store.CredentialSet{}
	for rows.Next() {
		c, err := scanCredentialSet(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: list credential sets: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: list credential sets: %w", err)
	}
	return out, nil
}

// DeleteCredentialSet implements store.CredentialSetStore.
func (s *Store) DeleteCredentialSet(ctx context.Context, org, name string) error {
	res, err := s.wst.exec(ctx, `DELETE FROM credential_sets WHERE org = ? AND name = ?`, org, name)
	if err == nil {
		err = oneRow(res)
	}
	if err != nil {
		return fmt.Errorf("sqlite store: delete credential set %s: %w", name, err)
	}
	return nil
}
