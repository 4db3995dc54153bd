package sqlite

import (
	"context"
	"fmt"

	"github.com/terratask/terratask/store"
)

// oidcKeyColumns are the stored columns of an OIDC signing key, in the
// order OIDCKeys scans them.
const oidcKeyColumns = `epoch, kid, alg, public_jwk, sealed_key, created_at, active_from`

// OIDCKeys implements store.OIDCKeyStore.
func (s *Store) OIDCKeys(ctx context.Context) ([]store.OIDCKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+oidcKeyColumns+` FROM oidc_keys ORDER BY epoch`)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: oidc keys: %w", err)
	}
	defer rows.Close()
	var keys []store.OIDCKey
	for rows.Next() {
		var (
			k               store.OIDCKey
			jwk             string
			created, active int64
		)
		if err := rows.Scan(&k.Epoch, &k.KID, &k.Alg, &jwk, &k.SealedKey, &created, &active); err != nil {
			return nil, fmt.Errorf("sqlite store: oidc keys: %w", err)
		}
		k.PublicJWK, k.CreatedAt, k.ActiveFrom = []byte(jwk), goTime(created), goTime(active)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: oidc keys: %w", err)
	}
	return keys, nil
}

// InsertOIDCKey implements store.OIDCKeyStore: INSERT ... ON CONFLICT DO
// NOTHING, so of two inserts of one epoch (or kid) the second writes
// nothing and reports false.
func (s *Store) InsertOIDCKey(ctx context.Context, k store.OIDCKey) (bool, error) {
	if err := store.CheckOIDCKey(k); err != nil {
		return false, fmt.Errorf("sqlite store: %w", err)
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO oidc_keys (`+oidcKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`,
		k.Epoch, k.KID, k.Alg, string(k.PublicJWK), k.SealedKey, dbTime(k.CreatedAt), dbTime(k.ActiveFrom))
	if err != nil {
		return false, fmt.Errorf("sqlite store: insert oidc key %d: %w", k.Epoch, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite store: insert oidc key %d: %w", k.Epoch, err)
	}
	return n == 1, nil
}

// DeleteOIDCKeys implements store.OIDCKeyStore.
func (s *Store) DeleteOIDCKeys(ctx context.Context, below int64) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM oidc_keys WHERE epoch < ?`, below)
	if err != nil {
		return 0, fmt.Errorf("sqlite store: delete oidc keys: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite store: delete oidc keys: %w", err)
	}
	return n, nil
}
