// Package secret seals a task's secrets (sensitive_variables and env) so they
// travel through Temporal history as ciphertext, masks their values in
// anything written out, seals Terraform state at rest in the store, and
// derives the per-task credentials of the state backend.
//
// The server seals with a Box when it starts a task; the runner that executes
// the task opens it with the same key. `terratask dev` keeps its key in the data
// dir; a fleet shares one through --secret-key / TERRATASK_SECRET_KEY.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/terratask/terratask/task"
)

// KeySize is the length of a key in bytes (AES-256).
const KeySize = 32

// Box seals and opens task secrets and stored Terraform state with
// AES-256-GCM, and derives the per-task credentials of the state backend.
type Box struct {
	aead cipher.AEAD
	// credKey keys the state credentials: an HMAC of the box key, so a
	// credential reveals nothing about the key that seals secrets.
	credKey []byte
	// old are keys of earlier rotations, tried when the current one does
	// not open (see AcceptOld).
	old []oldKey
	// signKey keys the per-org secrets that sign notify deliveries (see
	// SigningSecret), derived the same way.
	signKey []byte
}

// NewBox returns a Box for a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead, credKey: credentialKey(key), signKey: signingKey(key)}, nil
}

func credentialKey(key []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("terratask state credential v1"))
	return mac.Sum(nil)
}

func signingKey(key []byte) []byte {
	sign := hmac.New(sha256.New, key)
	sign.Write([]byte("terratask notify signing v1"))
	return sign.Sum(nil)
}

// ParseKey decodes a base64 (standard or URL) key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("secret key must be %d bytes, base64-encoded", KeySize)
}

// LoadOrCreateKeyFile reads a base64 key from path, creating it (0600) with a
// random key when it does not exist.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return ParseKey(string(b))
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading secret key: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating key dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing secret key: %w", err)
	}
	return key, nil
}

// Seal encrypts secrets; empty secrets seal to "".
func (b *Box) Seal(s task.Secrets) (string, error) {
	if s.Empty() {
		return "", nil
	}
	plain, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encoding secrets: %w", err)
	}
	sealed, err := b.SealBytes(plain, nil)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sealed), nil
}

// SealBytes encrypts plain, bound to context: OpenBytes needs the same
// context, so sealed data cannot be moved to another place (another
// workspace's state) unnoticed.
func (b *Box) SealBytes(plain, context []byte) ([]byte, error) {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plain)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return b.aead.Seal(nonce, nonce, plain, context), nil
}

// OpenBytes decrypts what SealBytes produced with the same context; it
// fails with ErrOpen.
func (b *Box) OpenBytes(sealed, context []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n {
		return nil, ErrOpen
	}
	plain, err := b.aead.Open(nil, sealed[:n], sealed[n:], context)
	if err != nil {
		if plain, ok := b.openOld(sealed, context); ok {
			return plain, nil
		}
		return nil, ErrOpen
	}
	return plain, nil
}

// StateUser is the user name under which the runner executing one attempt
// of one step of task taskID reaches the state backend: the task ID and the
// attempt's fence, an increasing number (see activities) that lets the
// server refuse an older attempt that is still running somewhere.
//
// A basic-auth user name cannot hold ':', which the IDs of tasks started by
// a schedule do (they end in an RFC 3339 time): it is written as %3A ('%'
// is in no task ID).
func StateUser(taskID string, fence int64) string {
	return strings.ReplaceAll(taskID, ":", "%3A") + "." + strconv.FormatInt(fence, 10)
}

// ParseStateUser splits what StateUser made.
func ParseStateUser(user string) (taskID string, fence int64, ok bool) {
	i := strings.LastIndexByte(user, '.')
	if i <= 0 {
		return "", 0, false
	}
	fence, err := strconv.ParseInt(user[i+1:], 10, 64)
	if err != nil || fence < 0 || user[i+1:] != strconv.FormatInt(fence, 10) {
		return "", 0, false
	}
	return strings.ReplaceAll(user[:i], "%3A", ":"), fence, true
}

// StateCredential is the password of user (see StateUser) for the state of
// (org, workspace) on the server's HTTP backend. Runner and server derive it
// from the shared secret key, so it never travels through Temporal or the
// store; the server accepts it only while the task is not finished.
func (b *Box) StateCredential(user, org, workspace string) string {
	return stateCredential(b.credKey, user, org, workspace)
}

func stateCredential(credKey []byte, user, org, workspace string) string {
	mac := hmac.New(sha256.New, credKey)
	for _, part := range []string{user, org, workspace} {
		mac.Write([]byte(part))
		mac.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// CheckStateCredential reports whether cred is StateCredential(user, org,
// workspace), in constant time.
func (b *Box) CheckStateCredential(cred, user, org, workspace string) bool {
	return hmac.Equal([]byte(cred), []byte(b.StateCredential(user, org, workspace))) ||
		b.checkOldCredential(cred, user, org, workspace)
}

// ErrOpen is returned when sealed secrets cannot be decrypted (wrong key or
// tampered data). It never carries the data itself.
var ErrOpen = errors.New("cannot open task secrets: wrong secret key or corrupt data")

// Open decrypts what Seal produced.
func (b *Box) Open(sealed string) (task.Secrets, error) {
	var s task.Secrets
	if sealed == "" {
		return s, nil
	}
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return s, ErrOpen
	}
	plain, err := b.OpenBytes(raw, nil)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(plain, &s); err != nil {
		return s, ErrOpen
	}
	return s, nil
}

// Mask is the text that replaces a secret value.
const Mask = "***"

// Masker replaces known secret values in text.
type Masker struct{ r *strings.Replacer }

// NewMasker masks every string form of the secrets' values. Values shorter
// than 3 characters are masked too: a leak of a short secret is still a leak.
func NewMasker(s task.Secrets) *Masker {
	var vals []string
	add := func(v string) {
		if v != "" {
			vals = append(vals, v)
		}
	}
	for _, v := range s.Env {
		add(v)
	}
	for _, v := range s.SensitiveVariables {
		switch x := v.(type) {
		case string:
			add(x)
		default:
			if b, err := json.Marshal(x); err == nil {
				add(string(b))
			}
		}
	}
	if len(vals) == 0 {
		return &Masker{}
	}
	// Longest first, so a secret that contains another is masked whole.
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	pairs := make([]string, 0, 2*len(vals))
	for _, v := range vals {
		pairs = append(pairs, v, Mask)
	}
	return &Masker{r: strings.NewReplacer(pairs...)}
}

// String returns s with every secret value masked.
func (m *Masker) String(s string) string {
	if m == nil || m.r == nil {
		return s
	}
	return m.r.Replace(s)
}
