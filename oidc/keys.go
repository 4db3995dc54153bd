package oidc

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/terratask/terratask/store"
)

// Sealer seals the signing keys' private halves at rest: the control
// plane's *secret.Box (package secret) is one. OpenBytes must refuse what
// was sealed with another context.
type Sealer interface {
	SealBytes(plain, context []byte) ([]byte, error)
	OpenBytes(sealed, context []byte) ([]byte, error)
}

// KeyStore keeps the signing keys, shared by every replica:
// *sqlite.Store and *postgres.Store are ones (see store.OIDCKeyStore for
// the contract).
type KeyStore interface {
	store.OIDCKeyStore
}

// Alg is the one algorithm tokens are signed with: RS256, which AWS, GCP
// and Azure all accept (Azure accepts nothing else).
const Alg = "RS256"

// rsaBits is the size of the signing keys.
const rsaBits = 2048

// sealContext binds a sealed private key to its kid: a sealed key copied
// to another row (another kid) does not open.
func sealContext(kid string) []byte {
	return []byte("terratask oidc signing key v1\x00" + kid)
}

// thumbprint returns the RFC 7638 SHA-256 thumbprint of pub, base64url: a
// key's kid.
func thumbprint(pub *rsa.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// publicJWK returns the published form of a key: public, with its kid,
// "use": "sig" and "alg": "RS256".
func publicJWK(pub *rsa.PublicKey, kid string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: Alg, Use: "sig"}
}

// newKey makes a signing key for epoch, active from activeFrom, its
// private half sealed by sealer. The private key leaves this function only
// sealed.
func newKey(sealer Sealer, epoch int64, createdAt, activeFrom time.Time) (store.OIDCKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return store.OIDCKey{}, fmt.Errorf("oidc: generating a signing key: %w", err)
	}
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return store.OIDCKey{}, fmt.Errorf("oidc: signing key thumbprint: %w", err)
	}
	pub, err := json.Marshal(publicJWK(&priv.PublicKey, kid))
	if err != nil {
		return store.OIDCKey{}, fmt.Errorf("oidc: encoding signing key %s: %w", kid, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.OIDCKey{}, fmt.Errorf("oidc: encoding signing key %s: %w", kid, err)
	}
	sealed, err := sealer.SealBytes(der, sealContext(kid))
	clear(der)
	if err != nil {
		return store.OIDCKey{}, fmt.Errorf("oidc: sealing signing key %s: %w", kid, err)
	}
	return store.OIDCKey{
		Epoch: epoch, KID: kid, Alg: Alg, PublicJWK: pub, SealedKey: sealed,
		CreatedAt: createdAt, ActiveFrom: activeFrom,
	}, nil
}

// parsePublic reads a stored key's public JWK and checks it is the RSA key
// its kid names.
func parsePublic(k store.OIDCKey) (*rsa.PublicKey, error) {
	if k.Alg != Alg {
		return nil, fmt.Errorf("oidc: signing key %s: algorithm %q, want %s", k.KID, k.Alg, Alg)
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(k.PublicJWK, &jwk); err != nil {
		return nil, fmt.Errorf("oidc: signing key %s: public key: %w", k.KID, err)
	}
	pub, ok := jwk.Key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("oidc: signing key %s: public key is not an RSA public key", k.KID)
	}
	if kid, err := thumbprint(pub); err != nil || kid != k.KID {
		return nil, fmt.Errorf("oidc: signing key %s: public key does not match its kid", k.KID)
	}
	return pub, nil
}

// openSigner opens a stored key's private half and returns a signer that
// puts its kid in each token's header. The key must open with its own
// kid's context and match the stored public key.
func openSigner(sealer Sealer, k store.OIDCKey) (jose.Signer, error) {
	pub, err := parsePublic(k)
	if err != nil {
		return nil, err
	}
	der, err := sealer.OpenBytes(k.SealedKey, sealContext(k.KID))
	if err != nil {
		return nil, fmt.Errorf("oidc: signing key %s does not open (is the secret key the one that sealed it?): %w", k.KID, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("oidc: signing key %s: private key does not parse", k.KID)
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok || !priv.PublicKey.Equal(pub) {
		return nil, fmt.Errorf("oidc: signing key %s: private key does not match its public key", k.KID)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: priv, KeyID: k.KID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("oidc: signing key %s: %w", k.KID, err)
	}
	return signer, nil
}

// schedule is what the stored keys mean at a time: which signs, which are
// published, which key is due to be made and which may be deleted.
type schedule struct {
	// signing indexes the key that signs now; -1 when there is none.
	signing int
	// published lists the keys of the JWKS (indexes, by epoch).
	published []int
	// create, when create.epoch is not 0, is the key to make now.
	create struct {
		epoch      int64
		activeFrom time.Time
	}
	// pruneBelow, when not 0, is the epoch below which keys may be
	// deleted: out of the JWKS for a rotation period already.
	pruneBelow int64
}

// errNoKey is returned when there is no key to sign with.
var errNoKey = errors.New("oidc: no signing key")

// plan applies the rotation rules to keys (by epoch ascending) at now:
//
//   - with no key at all, the first (epoch 1) is made, active at once (no
//     relying party has a JWKS cached yet);
//   - the signing key is the latest whose ActiveFrom has come (the first
//     key when none has: a replica whose clock is behind the one that made
//     it);
//   - when no key follows the signing one and its rotation period is due to
//     end within PublishAhead, the next epoch is made, active at the end of
//     the period but never sooner than PublishAhead from now, so it is in
//     the JWKS at least PublishAhead before it signs anything;
//   - a key is retired when the next epoch becomes active, and stays in the
//     JWKS until retirement + MaxTTL + Leeway, when every token it signed
//     (at most MaxTTL long, signed at most Leeway after its retirement by a
//     replica whose clock is behind) has expired;
//   - a key out of the JWKS for a whole rotation period may be deleted.
func (o *options) plan(keys []store.OIDCKey, now time.Time) schedule {
	s := schedule{signing: -1}
	if len(keys) == 0 {
		s.create.epoch, s.create.activeFrom = 1, now
		return s
	}
	s.signing = 0
	for i, k := range keys {
		if !k.ActiveFrom.After(now) {
			s.signing = i
		}
	}
	cur := keys[s.signing]
	if s.signing == len(keys)-1 && !now.Before(cur.ActiveFrom.Add(o.rotation-o.publishAhead)) {
		at := cur.ActiveFrom.Add(o.rotation)
		if ahead := now.Add(o.publishAhead); at.Before(ahead) {
			at = ahead
		}
		s.create.epoch, s.create.activeFrom = cur.Epoch+1, at
	}
	for i := range keys {
		if i+1 < len(keys) {
			dropped := keys[i+1].ActiveFrom.Add(o.maxTTL + o.leeway)
			if !now.Before(dropped) {
				if i < s.signing && !now.Before(dropped.Add(o.rotation)) {
					s.pruneBelow = keys[i+1].Epoch
				}
				continue
			}
		}
		s.published = append(s.published, i)
	}
	return s
}
