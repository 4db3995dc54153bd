package oidc

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/terratask/terratask/store"
)

// Defaults of the Issuer's options.
const (
	// DefaultRotation is how long each key signs.
	DefaultRotation = 24 * time.Hour
	// DefaultMaxTTL bounds a token's life; longer steps renew theirs.
	DefaultMaxTTL = time.Hour
	// DefaultTTL is a token's life when Claims.TTL is 0.
	DefaultTTL = 15 * time.Minute
	// DefaultLeeway covers clocks that differ between replicas and
	// relying parties: a retired key stays published MaxTTL + Leeway.
	DefaultLeeway = 5 * time.Minute
	// StepMargin is how much longer than its step a token lives (StepTTL).
	StepMargin = 5 * time.Minute
	// refreshEvery is how long an Issuer uses the keys it read before
	// reading them again (to see keys other replicas made).
	refreshEvery = time.Minute
)

// Option configures an Issuer.
type Option func(*options)

type options struct {
	rotation, publishAhead, maxTTL, defaultTTL, leeway time.Duration
	now                                                func() time.Time
	log                                                *zap.Logger
}

// WithRotation sets how long each key signs (default 24h).
func WithRotation(d time.Duration) Option { return func(o *options) { o.rotation = d } }

// WithPublishAhead sets how long before it signs a new key is made and
// published (default: half the rotation period). At most the rotation
// period, at least 2 minutes (replicas reread the keys every minute).
func WithPublishAhead(d time.Duration) Option { return func(o *options) { o.publishAhead = d } }

// WithMaxTTL bounds a token's life (default 1h): a longer TTL is cut to it,
// and a retired key stays published this long (plus the leeway).
// Replicas sharing a store must agree on it.
func WithMaxTTL(d time.Duration) Option { return func(o *options) { o.maxTTL = d } }

// WithDefaultTTL sets a token's life when Claims.TTL is 0 (default 15m, or
// MaxTTL when that is shorter).
func WithDefaultTTL(d time.Duration) Option { return func(o *options) { o.defaultTTL = d } }

// WithLeeway sets the clock skew allowed for (default 5m).
func WithLeeway(d time.Duration) Option { return func(o *options) { o.leeway = d } }

// WithClock sets the Issuer's clock (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets where the Issuer logs key creation and deletion (kids
// and epochs, never keys).
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.log = l } }

// Issuer mints step tokens and serves the discovery document and JWKS that
// relying parties verify them with. It is safe for concurrent use; replicas
// sharing a KeyStore and a secret key sign with the same keys.
type Issuer struct {
	url    string
	prefix string // the issuer URL's path, without a trailing '/'
	keys   KeyStore
	sealer Sealer
	o      options

	mu       sync.Mutex
	cached   []store.OIDCKey // nil until read
	loadedAt time.Time
	signers  map[string]jose.Signer // by kid: opened private keys
}

// New returns an Issuer whose iss is issuerURL: https (http only for a
// loopback host: localhost, 127.0.0.0/8, ::1), no query or fragment; a
// trailing '/' is dropped, so the iss relying parties must trust is
// exactly URL(). keys and sealer are required. New reads no keys: the
// first Mint, request of the handler or Refresh does, making the first key
// when the store has none.
func New(issuerURL string, keys KeyStore, sealer Sealer, opts ...Option) (*Issuer, error) {
	u, err := url.Parse(issuerURL)
	if err != nil {
		return nil, fmt.Errorf("oidc: issuer URL %q: %w", issuerURL, err)
	}
	switch {
	case u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("oidc: issuer URL %q: must be an absolute https URL", issuerURL)
	case u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname())):
		return nil, fmt.Errorf("oidc: issuer URL %q: must be https (http only for localhost)", issuerURL)
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("oidc: issuer URL %q: must have no user, query or fragment", issuerURL)
	}
	if keys == nil || sealer == nil {
		return nil, errors.New("oidc: a key store and a sealer are required")
	}
	o := options{
		rotation: DefaultRotation, maxTTL: DefaultMaxTTL, leeway: DefaultLeeway,
		now: time.Now, log: zap.NewNop(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.publishAhead == 0 {
		o.publishAhead = o.rotation / 2
	}
	if o.defaultTTL == 0 {
		o.defaultTTL = min(DefaultTTL, o.maxTTL)
	}
	switch {
	case o.rotation < time.Minute:
		return nil, fmt.Errorf("oidc: rotation %v: must be a minute or more", o.rotation)
	case o.publishAhead < 2*refreshEvery || o.publishAhead > o.rotation:
		return nil, fmt.Errorf("oidc: publish ahead %v: must be between %v and the rotation period", o.publishAhead, 2*refreshEvery)
	case o.maxTTL < time.Minute:
		return nil, fmt.Errorf("oidc: max TTL %v: must be a minute or more", o.maxTTL)
	case o.defaultTTL <= 0 || o.defaultTTL > o.maxTTL:
		return nil, fmt.Errorf("oidc: default TTL %v: must be positive and at most the max TTL", o.defaultTTL)
	case o.leeway < 0:
		return nil, fmt.Errorf("oidc: leeway %v: must not be negative", o.leeway)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return &Issuer{
		url: u.String(), prefix: u.Path, keys: keys, sealer: sealer, o: o,
		signers: map[string]jose.Signer{},
	}, nil
}

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// URL returns the issuer: every token's iss and the base of discovery.
func (i *Issuer) URL() string { return i.url }

// MaxTTL returns the longest life a token may have.
func (i *Issuer) MaxTTL() time.Duration { return i.o.maxTTL }

// StepTTL returns the life of a token for a step that may run for limit:
// StepMargin longer, at most MaxTTL (a step that may run longer renews its
// token: see Refresher); the default TTL when limit is not positive.
func (i *Issuer) StepTTL(limit time.Duration) time.Duration {
	if limit <= 0 {
		return i.o.defaultTTL
	}
	return min(limit+StepMargin, i.o.maxTTL)
}

// String names the issuer (and never its keys).
func (i *Issuer) String() string { return "oidc.Issuer(" + i.url + ")" }

// GoString is String, so %#v prints no key either.
func (i *Issuer) GoString() string { return i.String() }

// Refresh reads the keys, makes the ones the rotation calls for (the first
// key, the next one ahead of its use) and deletes those long out of the
// JWKS. Mint and the handler do it when their keys are a minute old; a
// server may also call it at start and from time to time, so the next key
// is published even when no token is minted.
func (i *Issuer) Refresh(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	_, err := i.refreshLocked(ctx, i.o.now())
	return err
}

// current returns the keys and their schedule at now, reading them again
// when they are a minute old or the schedule calls for a change.
func (i *Issuer) current(ctx context.Context, now time.Time) ([]store.OIDCKey, schedule, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cached != nil {
		age := now.Sub(i.loadedAt)
		if s := i.o.plan(i.cached, now); age >= 0 && age < refreshEvery && s.create.epoch == 0 && s.pruneBelow == 0 {
			return i.cached, s, nil
		}
	}
	s, err := i.refreshLocked(ctx, now)
	if err != nil {
		// The keys read before are still right while no key another
		// replica made since can have begun to sign: a key is made at
		// least PublishAhead before it signs.
		if i.cached != nil && !now.Before(i.loadedAt) && now.Before(i.loadedAt.Add(i.o.publishAhead)) {
			if s := i.o.plan(i.cached, now); s.signing >= 0 {
				i.o.log.Warn("oidc: using the signing keys read before", zap.Error(err))
				return i.cached, s, nil
			}
		}
		return nil, schedule{}, err
	}
	return i.cached, s, nil
}

// refreshLocked is Refresh with i.mu held.
func (i *Issuer) refreshLocked(ctx context.Context, now time.Time) (schedule, error) {
	keys, err := i.keys.OIDCKeys(ctx)
	if err != nil {
		return schedule{}, fmt.Errorf("oidc: reading signing keys: %w", err)
	}
	s := i.o.plan(keys, now)
	// Make the key the schedule calls for. Another replica may make the
	// same epoch at once: one insert wins, and both read it back. Twice at
	// most: the first key, then the one after it.
	for range 3 {
		if s.create.epoch == 0 {
			break
		}
		k, err := newKey(i.sealer, s.create.epoch, now, s.create.activeFrom)
		if err != nil {
			return schedule{}, err
		}
		inserted, err := i.keys.InsertOIDCKey(ctx, k)
		if err != nil {
			return schedule{}, fmt.Errorf("oidc: storing signing key %d: %w", k.Epoch, err)
		}
		if inserted {
			i.o.log.Info("oidc: made a signing key", zap.String("kid", k.KID), zap.Int64("epoch", k.Epoch),
				zap.Time("active_from", k.ActiveFrom))
		}
		if keys, err = i.keys.OIDCKeys(ctx); err != nil {
			return schedule{}, fmt.Errorf("oidc: reading signing keys: %w", err)
		}
		s = i.o.plan(keys, now)
	}
	if s.signing < 0 {
		return schedule{}, errNoKey
	}
	if s.pruneBelow > 0 {
		if n, err := i.keys.DeleteOIDCKeys(ctx, s.pruneBelow); err != nil {
			i.o.log.Warn("oidc: deleting old signing keys", zap.Error(err))
		} else {
			if n > 0 {
				i.o.log.Info("oidc: deleted old signing keys", zap.Int64("below_epoch", s.pruneBelow), zap.Int64("deleted", n))
			}
			var kept []store.OIDCKey
			for _, k := range keys {
				if k.Epoch >= s.pruneBelow {
					kept = append(kept, k)
				}
			}
			keys = kept
			s = i.o.plan(keys, now)
		}
	}
	// Forget the opened private keys that no longer sign.
	for kid := range i.signers {
		if kid != keys[s.signing].KID {
			delete(i.signers, kid)
		}
	}
	i.cached, i.loadedAt = keys, now
	return s, nil
}

// signer returns the signer of the key that signs at now, and its kid.
func (i *Issuer) signer(ctx context.Context, now time.Time) (jose.Signer, string, error) {
	keys, s, err := i.current(ctx, now)
	if err != nil {
		return nil, "", err
	}
	k := keys[s.signing]
	i.mu.Lock()
	defer i.mu.Unlock()
	if sig, ok := i.signers[k.KID]; ok {
		return sig, k.KID, nil
	}
	sig, err := openSigner(i.sealer, k)
	if err != nil {
		return nil, "", err
	}
	i.signers[k.KID] = sig
	return sig, k.KID, nil
}

// Mint returns a signed token for c and when it expires: RS256, its kid the
// key that signs now, valid from now for c.TTL (the default when 0, at
// most MaxTTL). The private key never leaves the Issuer; errors name kids,
// never key material.
func (i *Issuer) Mint(ctx context.Context, c Claims) (string, time.Time, error) {
	if err := c.Validate(); err != nil {
		return "", time.Time{}, err
	}
	sub, _ := Subject(c.Org, c.Workspace, c.Agent, c.Phase)
	ttl := c.TTL
	if ttl == 0 {
		ttl = i.o.defaultTTL
	}
	ttl = min(ttl, i.o.maxTTL)
	now := i.o.now()
	sig, _, err := i.signer(ctx, now)
	if err != nil {
		return "", time.Time{}, err
	}
	iat := now.Unix()
	exp := now.Add(ttl).Unix()
	payload, err := json.Marshal(TokenClaims{
		Issuer: i.url, Subject: sub, Audience: c.Audience,
		IssuedAt: iat, NotBefore: iat, Expiry: exp, ID: rand.Text(),
		Org: c.Org, Workspace: c.Workspace, Agent: c.Agent, RunPhase: c.Phase,
		TaskID: c.TaskID, RunnerID: c.RunnerID, Key: c.KeyName,
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("oidc: encoding claims: %w", err)
	}
	jws, err := sig.Sign(payload)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("oidc: signing: %w", err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("oidc: signing: %w", err)
	}
	return token, time.Unix(exp, 0), nil
}

// JWKS returns the public keys relying parties verify tokens with: the key
// that signs, the next one (ahead of its use) and the retired ones whose
// tokens may not have expired yet.
func (i *Issuer) JWKS(ctx context.Context) (jose.JSONWebKeySet, error) {
	now := i.o.now()
	keys, s, err := i.current(ctx, now)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, n := range s.published {
		pub, err := parsePublic(keys[n])
		if err != nil {
			return jose.JSONWebKeySet{}, err
		}
		set.Keys = append(set.Keys, publicJWK(pub, keys[n].KID))
	}
	return set, nil
}
