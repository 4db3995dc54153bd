-- OIDC workload identity (issue 22): the signing keys of terratask's OIDC
-- issuer (package oidc), shared by every server replica so they sign with
-- the same key and publish the same JWKS, and kept across restarts.
--
-- A key's epoch numbers it from 1 and is unique, and so is its kid: of two
-- replicas creating the key of one epoch at once, one row is written (the
-- other's INSERT ... ON CONFLICT DO NOTHING writes nothing) and both read
-- it back. The private key is stored sealed with the control plane's box,
-- bound to its kid; public_jwk is the public key as JSON text. The epoch
-- is the rowid (INTEGER PRIMARY KEY), so the table is not WITHOUT ROWID.
-- Timestamps are INTEGER microseconds, as in 0001.
CREATE TABLE oidc_keys (
	epoch       INTEGER PRIMARY KEY CHECK (epoch >= 1),
	kid         TEXT    NOT NULL ON CONFLICT FAIL UNIQUE,
	alg         TEXT    NOT NULL ON CONFLICT FAIL,
	public_jwk  TEXT    NOT NULL ON CONFLICT FAIL,
	sealed_key  BLOB    NOT NULL ON CONFLICT FAIL,
	created_at  INTEGER NOT NULL ON CONFLICT FAIL,
	active_from INTEGER NOT NULL ON CONFLICT FAIL
);
