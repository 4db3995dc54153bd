// Package codec encrypts every Temporal payload terratask writes: workflow
// and activity inputs and results, signals, queries, updates, memos, user
// metadata (summaries and details) and failure details. It is a Temporal
// PayloadCodec (AES-256-GCM) used through converter.NewCodecDataConverter by
// every client terratask dials, so Temporal's database and its Web UI hold
// nothing readable without the key.
//
// The payload key is derived from terratask's secret key (HKDF-SHA256, with a
// label of its own), never used as it is. Each encrypted payload names the ID
// of its key in its metadata, so a codec given the current key and the keys
// still accepted for decryption (a secret-key rotation) reads every payload
// it ever wrote. Payloads that are not encrypted (histories recorded before
// encryption, search attributes) decode as they are.
//
// Another Temporal application that runs the task workflow as a child
// workflow, or reads its results, dials with the DataConverter and
// FailureConverter of an org's codec (NewOrg with the org's key) or, if it
// is trusted with every org, of the control plane's (package codec/control, with
// the secret key).
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload.
const (
	// Encoding is the "encoding" metadata of an encrypted payload.
	Encoding = "binary/encrypted"
	// MetadataKeyID names the key a payload is encrypted under.
	MetadataKeyID = "encryption-key-id"
	// MetadataCipher names the cipher.
	MetadataCipher = "encryption-cipher"
	// Cipher is the only cipher written.
	Cipher = "AES256-GCM"
	// MetadataOrg names the org whose key a payload is encrypted under;
	// payloads under the secret key itself (the control plane's) have none.
	MetadataOrg = "encryption-org"
)

// Labels of the key derivations (HKDF info). Changing one changes every key
// and key ID: they are part of the format.
const (
	labelKey   = "terratask payload codec v1: key"
	labelKeyID = "terratask payload codec v1: key id"
	// aadPrefix binds a ciphertext to the format and its key ID.
	aadPrefix = "terratask payload v1/"
)

// KeySize is the size of a secret key in bytes.
const KeySize = 32

type key struct {
	id   string
	aead cipher.AEAD
}

// Codec encrypts payloads under the current key and decrypts payloads of the
// current key and of the old keys it was given.
type Codec struct {
	current key
	keys    map[string]key // by ID, current included
	// org is the org whose keys these are ("": the secret key's), named
	// in every payload the codec encrypts.
	org string
}

// New returns a codec that encrypts under current and also decrypts what old
// keys encrypted. Keys are raw 32-byte secret keys (the same secret key that
// seals task secrets); the payload keys are derived from them.
func New(current []byte, old ...[]byte) (*Codec, error) {
	cur, err := derive(current)
	if err != nil {
		return nil, fmt.Errorf("current secret key: %w", err)
	}
	c := &Codec{current: cur, keys: map[string]key{cur.id: cur}}
	for i, o := range old {
		k, err := derive(o)
		if err != nil {
			return nil, fmt.Errorf("old secret key %d: %w", i+1, err)
		}
		if _, dup := c.keys[k.id]; !dup {
			c.keys[k.id] = k
		}
	}
	return c, nil
}

// NewOrg returns the codec of a runner of org: current and old are org keys
// (master.OrgKey, `terratask keys org`), and every payload it encrypts names
// org, so the control plane knows which org key opens it.
func NewOrg(org string, current []byte, old ...[]byte) (*Codec, error) {
	if org == "" {
		return nil, errors.New("an org codec needs an org")
	}
	c, err := New(current, old...)
	if err != nil {
		return nil, err
	}
	c.org = org
	return c, nil
}

// Org is the org whose keys the codec holds ("" for the secret key's).
func (c *Codec) Org() string { return c.org }

// KeyID is the ID of a secret key's payload key, as payloads name it: 16 hex
// characters derived one way from the key, which tell nothing about it.
func KeyID(secretKey []byte) (string, error) {
	k, err := derive(secretKey)
	if err != nil {
		return "", err
	}
	return k.id, nil
}

func derive(secretKey []byte) (key, error) {
	if len(secretKey) != KeySize {
		return key{}, fmt.Errorf("must be %d bytes, got %d", KeySize, len(secretKey))
	}
	raw, err := hkdf.Key(sha256.New, secretKey, nil, labelKey, 32)
	if err != nil {
		return key{}, err
	}
	id, err := hkdf.Key(sha256.New, secretKey, nil, labelKeyID, 8)
	if err != nil {
		return key{}, err
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, err
	}
	return key{id: hex.EncodeToString(id), aead: aead}, nil
}

// KeyID is the ID of the key the codec encrypts under.
func (c *Codec) KeyID() string { return c.current.id }

// Encode encrypts every payload under the current key. The whole payload
// (its metadata, such as "json/plain", and its data) is sealed; the result
// carries only the encoding, the cipher and the key ID in the clear.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encoding payload: %w", err)
		}
		aead := c.current.aead
		sealed := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(sealed); err != nil {
			return nil, fmt.Errorf("encrypting payload: %w", err)
		}
		sealed = aead.Seal(sealed, sealed, plain, aad(c.current.id))
		md := map[string][]byte{
			converter.MetadataEncoding: []byte(Encoding),
			MetadataCipher:             []byte(Cipher),
			MetadataKeyID:              []byte(c.current.id),
		}
		if c.org != "" {
			md[MetadataOrg] = []byte(c.org)
		}
		out[i] = &commonpb.Payload{Metadata: md, Data: sealed}
	}
	return out, nil
}

// ErrUnknownKey is returned for a payload encrypted under a key the codec
// does not have (neither the current key nor an old one).
var ErrUnknownKey = errors.New("payload encrypted under a key this process does not have (give the old secret key in --old-secret-keys-file)")

// ErrCorrupt is returned for an encrypted payload that does not open under
// the key it names (tampered, or truncated).
var ErrCorrupt = errors.New("encrypted payload does not open: corrupt or tampered")

// Decode decrypts encrypted payloads and returns the others as they are, so
// histories written before encryption still read.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != Encoding {
			out[i] = p
			continue
		}
		if org := string(p.GetMetadata()[MetadataOrg]); org != c.org {
			return nil, fmt.Errorf("%w: the payload is org %q's, this process holds %s", ErrUnknownKey, org, c.describe())
		}
		dec, err := c.open(p)
		if err != nil {
			return nil, err
		}
		out[i] = dec
	}
	return out, nil
}

func (c *Codec) describe() string {
	if c.org == "" {
		return "the secret key's"
	}
	return "org " + strconv.Quote(c.org) + "'s"
}

// open decrypts one encrypted payload under the key it names.
func (c *Codec) open(p *commonpb.Payload) (*commonpb.Payload, error) {
	if cph := string(p.GetMetadata()[MetadataCipher]); cph != "" && cph != Cipher {
		return nil, fmt.Errorf("payload cipher %q: only %s is known", cph, Cipher)
	}
	id := string(p.GetMetadata()[MetadataKeyID])
	k, ok := c.keys[id]
	if !ok {
		return nil, fmt.Errorf("key ID %q: %w", id, ErrUnknownKey)
	}
	n := k.aead.NonceSize()
	if len(p.Data) < n+k.aead.Overhead() {
		return nil, ErrCorrupt
	}
	plain, err := k.aead.Open(nil, p.Data[:n], p.Data[n:], aad(id))
	if err != nil {
		return nil, ErrCorrupt
	}
	var dec commonpb.Payload
	if err := proto.Unmarshal(plain, &dec); err != nil {
		return nil, ErrCorrupt
	}
	return &dec, nil
}

func aad(keyID string) []byte { return []byte(aadPrefix + keyID) }

// DataConverter is Temporal's default data converter with every payload
// passing through the codec.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter encodes failures with the codec's data converter and
// moves their messages and stack traces into the encrypted attributes
// payload: an error message can quote a Terraform diagnostic, which can
// quote a variable's value.
func (c *Codec) FailureConverter() converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          c.DataConverter(),
		EncodeCommonAttributes: true,
	})
}
