package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// OIDCKey is one signing key of terratask's OIDC issuer (package oidc): a
// row per key, shared by every server replica so they all sign with the
// same key and publish the same JWKS, and kept across restarts.
//
// Keys are numbered by Epoch from 1; a key's number is unique, and so is
// its KID, so of two replicas creating the key of one epoch at once only
// one row is written (InsertOIDCKey reports which) and both then sign with
// it. The key of epoch N signs from its ActiveFrom until the key of the
// next epoch becomes active; package oidc decides when keys are created,
// published and dropped (the store keeps no rule of its own).
type OIDCKey struct {
	// Epoch numbers the key, from 1; unique.
	Epoch int64
	// KID is the key's JWK "kid" (package oidc uses the RFC 7638
	// thumbprint of the public key); unique.
	KID string
	// Alg is the JWS algorithm the key signs with ("RS256").
	Alg string
	// PublicJWK is the public key as a JSON Web Key (JSON text).
	PublicJWK []byte
	// SealedKey is the private key sealed with the control plane's secret
	// box, bound to the key's kid: never the key itself.
	SealedKey []byte
	// CreatedAt is when the key was made; ActiveFrom when it begins to
	// sign (later than CreatedAt, except for the very first key, so that
	// relying parties see it in the JWKS before any token it signed).
	// Both are stored to the microsecond.
	CreatedAt  time.Time
	ActiveFrom time.Time
}

// OIDCKeyStore keeps the OIDC issuer's signing keys. It is not part of
// Store: the concrete stores (store/sqlite, store/postgres) implement it,
// and package oidc takes it as its KeyStore.
type OIDCKeyStore interface {
	// OIDCKeys returns every key, by Epoch ascending.
	OIDCKeys(ctx context.Context) ([]OIDCKey, error)
	// InsertOIDCKey writes k unless a key of its Epoch or KID exists
	// (then nothing is written and inserted is false: read the keys back
	// to find the one that won). Epoch, KID, Alg, PublicJWK (valid JSON),
	// SealedKey and ActiveFrom are required.
	InsertOIDCKey(ctx context.Context, k OIDCKey) (inserted bool, err error)
	// DeleteOIDCKeys deletes the keys whose Epoch is below below and
	// returns how many it deleted.
	DeleteOIDCKeys(ctx context.Context, below int64) (int64, error)
}

// CheckOIDCKey returns an error naming what k lacks for InsertOIDCKey
// (never a key's bytes).
func CheckOIDCKey(k OIDCKey) error {
	switch {
	case k.Epoch < 1:
		return fmt.Errorf("oidc key: epoch %d: must be 1 or more", k.Epoch)
	case k.KID == "":
		return errors.New("oidc key: kid is required")
	case k.Alg == "":
		return fmt.Errorf("oidc key %s: alg is required", k.KID)
	case len(k.PublicJWK) == 0 || !json.Valid(k.PublicJWK):
		return fmt.Errorf("oidc key %s: public_jwk must be a JSON Web Key", k.KID)
	case len(k.SealedKey) == 0:
		return fmt.Errorf("oidc key %s: sealed key is required", k.KID)
	case k.ActiveFrom.IsZero():
		return fmt.Errorf("oidc key %s: active_from is required", k.KID)
	}
	return nil
}
