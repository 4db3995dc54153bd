package codec

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func mustNew(t testing.TB, cur []byte, old ...[]byte) *Codec {
	t.Helper()
	c, err := New(cur, old...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEncryptsEveryPayloadAndRoundTrips(t *testing.T) {
	c := mustNew(t, testKey(1))
	dc := c.DataConverter()
	in := map[string]any{"app_name": "plaintext-app-name", "n": 3}
	p, err := dc.ToPayload(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.Metadata[converter.MetadataEncoding]); got != Encoding {
		t.Fatalf("encoding %q, want %q", got, Encoding)
	}
	if string(p.Metadata[MetadataKeyID]) != c.KeyID() || len(c.KeyID()) != 16 {
		t.Fatalf("key ID %q, codec's %q", p.Metadata[MetadataKeyID], c.KeyID())
	}
	if bytes.Contains(p.Data, []byte("plaintext-app-name")) || bytes.Contains(p.Data, []byte("json/plain")) {
		t.Fatal("plaintext in the encrypted payload")
	}
	var out map[string]any
	if err := dc.FromPayload(p, &out); err != nil {
		t.Fatal(err)
	}
	if out["app_name"] != "plaintext-app-name" {
		t.Fatalf("round trip: %v", out)
	}
	// Two encodings of one value differ (a fresh nonce each time).
	p2, _ := dc.ToPayload(in)
	if bytes.Equal(p.Data, p2.Data) {
		t.Fatal("same ciphertext twice")
	}
}

func TestPlainPayloadsDecodeAsTheyAre(t *testing.T) {
	c := mustNew(t, testKey(1))
	plain, err := converter.GetDefaultDataConverter().ToPayload("recorded before encryption")
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := c.DataConverter().FromPayload(plain, &s); err != nil || s != "recorded before encryption" {
		t.Fatalf("plain payload: %q %v", s, err)
	}
}

func TestRotationKeepsOldPayloadsReadable(t *testing.T) {
	old := mustNew(t, testKey(1))
	p, err := old.DataConverter().ToPayload("written under the old key")
	if err != nil {
		t.Fatal(err)
	}
	rotated := mustNew(t, testKey(2), testKey(1))
	if rotated.KeyID() == old.KeyID() {
		t.Fatal("key IDs of two keys are equal")
	}
	var s string
	if err := rotated.DataConverter().FromPayload(p, &s); err != nil || s != "written under the old key" {
		t.Fatalf("after rotation: %q %v", s, err)
	}
	// New payloads use the new key.
	np, _ := rotated.DataConverter().ToPayload("new")
	if string(np.Metadata[MetadataKeyID]) != rotated.KeyID() {
		t.Fatal("new payload not under the current key")
	}
	// Without the old key it is refused with a clear error.
	without := mustNew(t, testKey(2))
	err = without.DataConverter().FromPayload(p, &s)
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), old.KeyID()) {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestTamperedPayloadIsRefused(t *testing.T) {
	c := mustNew(t, testKey(1))
	ps, err := c.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"x"`)}})
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(p *commonpb.Payload){
		"flipped bit": func(p *commonpb.Payload) { p.Data[len(p.Data)-1] ^= 1 },
		"truncated":   func(p *commonpb.Payload) { p.Data = p.Data[:10] },
		// A payload moved under another key ID of the same codec fails the
		// authentication of its key ID.
		"other key id": func(p *commonpb.Payload) {
			p.Metadata[MetadataKeyID] = []byte(mustNew(t, testKey(3)).KeyID())
		},
	} {
		t.Run(name, func(t *testing.T) {
			cp := &commonpb.Payload{Metadata: map[string][]byte{}, Data: append([]byte(nil), ps[0].Data...)}
			for k, v := range ps[0].Metadata {
				cp.Metadata[k] = v
			}
			mutate(cp)
			multi := mustNew(t, testKey(1), testKey(3))
			if _, err := multi.Decode([]*commonpb.Payload{cp}); err == nil {
				t.Fatal("tampered payload decoded")
			}
		})
	}
}

func TestKeyIDIsStableAndNotTheKey(t *testing.T) {
	id1, err := KeyID(testKey(7))
	if err != nil {
		t.Fatal(err)
	}
	id2, _ := KeyID(testKey(7))
	if id1 != id2 || strings.Contains(id1, "0707") {
		t.Fatalf("key IDs %q %q", id1, id2)
	}
	if _, err := New(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte key was accepted")
	}
	if _, err := New(testKey(1), make([]byte, 3)); err == nil {
		t.Fatal("a short old key was accepted")
	}
}

func TestFailureMessagesAreEncrypted(t *testing.T) {
	c := mustNew(t, testKey(1))
	fc := c.FailureConverter()
	f := fc.ErrorToFailure(temporal.NewApplicationError("variable value secret-in-message", "terraform_error", map[string]any{"detail": "secret-in-details"}))
	if strings.Contains(f.GetMessage(), "secret-in-message") || strings.Contains(f.GetStackTrace(), "secret") {
		t.Fatalf("failure message in the clear: %q", f.GetMessage())
	}
	raw, _ := f.GetEncodedAttributes().Marshal()
	if bytes.Contains(raw, []byte("secret-in-message")) {
		t.Fatal("encoded attributes in the clear")
	}
	back := fc.FailureToError(f)
	var appErr *temporal.ApplicationError
	if !errors.As(back, &appErr) || !strings.Contains(appErr.Message(), "secret-in-message") || appErr.Type() != "terraform_error" {
		t.Fatalf("failure round trip: %v", back)
	}
	var details map[string]any
	if err := appErr.Details(&details); err != nil || details["detail"] != "secret-in-details" {
		t.Fatalf("details: %v %v", details, err)
	}
}

func BenchmarkEncodeDecode(b *testing.B) {
	c := mustNew(b, testKey(1))
	p := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: bytes.Repeat([]byte("x"), 2048)}
	b.SetBytes(int64(len(p.Data)))
	for b.Loop() {
		enc, err := c.Encode([]*commonpb.Payload{p})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
