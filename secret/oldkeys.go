package secret

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"fmt"
	"os"
	"strings"
)

// ReadKeysFile reads the keys still accepted for decryption after a
// secret-key rotation (--old-secret-keys-file): one base64 32-byte key a
// line; blank lines and lines starting with # are skipped. Errors name the
// line, never the key.
func ReadKeysFile(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the old secret keys file: %w", err)
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := ParseKey(line)
		if err != nil {
			return nil, fmt.Errorf("old secret keys file, line %d: %w", n, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the old secret keys file: %w", err)
	}
	return keys, nil
}

// oldKey is a key the box still opens with after a rotation.
type oldKey struct {
	aead    cipher.AEAD
	credKey []byte
}

// AcceptOld makes the box open what older keys sealed (task secrets and
// stored Terraform state) and accept state credentials derived from them,
// so tasks and state written before a secret-key rotation stay usable.
// Sealing always uses the current key.
func (b *Box) AcceptOld(keys ...[]byte) error {
	for i, k := range keys {
		if len(k) != KeySize {
			return fmt.Errorf("old secret key %d must be %d bytes, got %d", i+1, KeySize, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return err
		}
		b.old = append(b.old, oldKey{aead: aead, credKey: credentialKey(k)})
	}
	return nil
}

// openOld tries the old keys in turn.
func (b *Box) openOld(sealed, context []byte) ([]byte, bool) {
	for _, k := range b.old {
		n := k.aead.NonceSize()
		if len(sealed) < n {
			return nil, false
		}
		if plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], context); err == nil {
			return plain, true
		}
	}
	return nil, false
}

// checkOldCredential reports whether cred was derived from an old key.
func (b *Box) checkOldCredential(cred, user, org, workspace string) bool {
	for _, k := range b.old {
		if hmac.Equal([]byte(cred), []byte(stateCredential(k.credKey, user, org, workspace))) {
			return true
		}
	}
	return false
}
