package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/terratask/terratask/store"
)

// oidcKeyColumns are the stored columns of an OIDC signing key, in the
// order OIDCKeys scans them.
const oidcKeyColumns = `epoch, kid, alg, public_jwk, sealed_key, created_at, active_from`

// OIDCKeys implements store.OIDCKeyStore.
func (s *Store) OIDCKeys(ctx context.Context) ([]store.OIDCKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+oidcKeyColumns+` FROM oidc_keys ORDER BY epoch`)
	if err != nil {
		return nil, fmt.Errorf("postgres store: oidc keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.OIDCKey, error) {
		var (
			k   store.OIDCKey
			jwk string
		)
		if err := row.Scan(&k.Epoch, &k.KID, &k.Alg, &jwk, &k.SealedKey, &k.CreatedAt, &k.ActiveFrom); err != nil {
			return k, err
		}
		k.PublicJWK, k.CreatedAt, k.ActiveFrom = []byte(jwk), k.CreatedAt.UTC(), k.ActiveFrom.UTC()
		return k, nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres store: oidc keys: %w", err)
	}
	return keys, nil
}

// InsertOIDCKey implements store.OIDCKeyStore: INSERT ... ON CONFLICT DO
// NOTHING, so of two inserts of one epoch (or kid), in any replica, the
// second writes nothing and reports false.
func (s *Store) InsertOIDCKey(ctx context.Context, k store.OIDCKey) (bool, error) {
	if err := store.CheckOIDCKey(k); err != nil {
		return false, fmt.Errorf("postgres store: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO oidc_keys (`+oidcKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT DO NOTHING`,
		k.Epoch, txt(k.KID), txt(k.Alg), txt(string(k.PublicJWK)), k.SealedKey, dbTime(k.CreatedAt), dbTime(k.ActiveFrom))
	if err != nil {
		return false, fmt.Errorf("postgres store: insert oidc key %d: %w", k.Epoch, err)
	}
	return tag.RowsAffected() == 1, nil
}

// DeleteOIDCKeys implements store.OIDCKeyStore.
func (s *Store) DeleteOIDCKeys(ctx context.Context, below int64) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM oidc_keys WHERE epoch < $1`, below)
	if err != nil {
		return 0, fmt.Errorf("postgres store: delete oidc keys: %w", err)
	}
	return tag.RowsAffected(), nil
}
