-- OIDC workload identity (issue 22): the signing keys of terratask's OIDC
-- issuer (package oidc), shared by every server replica so they sign with
-- the same key and publish the same JWKS, and kept across restarts.
--
-- A key's epoch numbers it from 1 and is unique, and so is its kid: of two
-- replicas creating the key of one epoch at once, one row is written (the
-- other's INSERT ... ON CONFLICT DO NOTHING writes nothing) and both read
-- it back. The private key is stored sealed with the control plane's box,
-- bound to its kid; public_jwk is the public key as JSON text.
CREATE TABLE oidc_keys (
	epoch       bigint           PRIMARY KEY CHECK (epoch >= 1),
	kid         text COLLATE "C" NOT NULL UNIQUE,
	alg         text COLLATE "C" NOT NULL,
	public_jwk  text             NOT NULL,
	sealed_key  bytea            NOT NULL,
	created_at  timestamptz      NOT NULL,
	active_from timestamptz      NOT NULL
);
