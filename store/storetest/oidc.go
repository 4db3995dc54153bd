package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/terratask/terratask/store"
)

// newOIDCKey returns a key of epoch whose kid and bytes differ by tag; its
// sealed key holds bytes no text column could (NUL, 0xff).
func newOIDCKey(epoch int64, tag string) store.OIDCKey {
	at := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC).Add(time.Duration(epoch) * time.Hour)
	return store.OIDCKey{
		Epoch:      epoch,
		KID:        "kid-" + tag,
		Alg:        "RS256",
		PublicJWK:  []byte(`{"kty":"RSA","kid":"kid-` + tag + `","n":"AQAB","e":"AQAB"}`),
		SealedKey:  append([]byte{0, 0xff, 0x80, 'x'}, tag...),
		CreatedAt:  at,
		ActiveFrom: at.Add(24 * time.Hour),
	}
}

// diffOIDCKey lists the fields in which got differs from want, whose
// times are compared as stored (to the microsecond, UTC).
func diffOIDCKey(got, want store.OIDCKey) []string {
	var d []string
	if got.Epoch != want.Epoch || got.KID != want.KID || got.Alg != want.Alg {
		d = append(d, fmt.Sprintf("epoch, kid, alg = %d %q %q, want %d %q %q", got.Epoch, got.KID, got.Alg, want.Epoch, want.KID, want.Alg))
	}
	if !bytes.Equal(got.PublicJWK, want.PublicJWK) {
		d = append(d, fmt.Sprintf("PublicJWK = %s, want %s", got.PublicJWK, want.PublicJWK))
	}
	if !bytes.Equal(got.SealedKey, want.SealedKey) {
		d = append(d, fmt.Sprintf("SealedKey = %x, want %x", got.SealedKey, want.SealedKey))
	}
	for _, f := range []struct {
		name string
		g, w time.Time
	}{{"CreatedAt", got.CreatedAt, want.CreatedAt}, {"ActiveFrom", got.ActiveFrom, want.ActiveFrom}} {
		w := f.w.Truncate(time.Microsecond).UTC()
		if !f.g.Equal(w) || f.g.Location() != time.UTC {
			d = append(d, fmt.Sprintf("%s = %v, want %v", f.name, f.g, w))
		}
	}
	return d
}

// checkOIDCKeys fails t unless st holds exactly want, by epoch.
func checkOIDCKeys(t *testing.T, st store.OIDCKeyStore, want ...store.OIDCKey) {
	t.Helper()
	got, err := st.OIDCKeys(context.Background())
	if err != nil {
		t.Fatalf("OIDCKeys: %v", err)
	}
	if len(got) != len(want) {
		var epochs []int64
		for _, k := range got {
			epochs = append(epochs, k.Epoch)
		}
		t.Fatalf("OIDCKeys returned %d keys (epochs %v), want %d", len(got), epochs, len(want))
	}
	for i := range want {
		if d := diffOIDCKey(got[i], want[i]); d != nil {
			t.Errorf("OIDCKeys[%d]: %v", i, d)
		}
	}
}

// OIDCKeys checks a store.OIDCKeyStore. a and b are two stores on one
// empty database (two server replicas): what one inserts the other reads,
// and of concurrent inserts of one epoch through both exactly one wins.
func OIDCKeys(t *testing.T, a, b store.OIDCKeyStore) {
	ctx := context.Background()
	checkOIDCKeys(t, a)

	// Incomplete keys are refused and write nothing.
	for name, bad := range map[string]func(*store.OIDCKey){
		"epoch 0":        func(k *store.OIDCKey) { k.Epoch = 0 },
		"no kid":         func(k *store.OIDCKey) { k.KID = "" },
		"no alg":         func(k *store.OIDCKey) { k.Alg = "" },
		"bad jwk":        func(k *store.OIDCKey) { k.PublicJWK = []byte("{not json") },
		"no sealed":      func(k *store.OIDCKey) { k.SealedKey = nil },
		"no active_from": func(k *store.OIDCKey) { k.ActiveFrom = time.Time{} },
	} {
		k := newOIDCKey(1, "bad")
		bad(&k)
		if ok, err := a.InsertOIDCKey(ctx, k); err == nil || ok {
			t.Errorf("InsertOIDCKey(%s) = %v, %v; want an error", name, ok, err)
		}
	}
	checkOIDCKeys(t, b)

	k1 := newOIDCKey(1, "one")
	if ok, err := a.InsertOIDCKey(ctx, k1); err != nil || !ok {
		t.Fatalf("InsertOIDCKey(epoch 1) = %v, %v; want inserted", ok, err)
	}
	checkOIDCKeys(t, b, k1)

	// Another key of the same epoch, or with the same kid, writes nothing.
	if ok, err := b.InsertOIDCKey(ctx, newOIDCKey(1, "other")); err != nil || ok {
		t.Errorf("InsertOIDCKey(epoch 1 again) = %v, %v; want false, nil", ok, err)
	}
	sameKID := newOIDCKey(2, "one")
	if ok, err := b.InsertOIDCKey(ctx, sameKID); err != nil || ok {
		t.Errorf("InsertOIDCKey(epoch 2, kid of epoch 1) = %v, %v; want false, nil", ok, err)
	}
	checkOIDCKeys(t, a, k1)

	// Replicas racing to create epoch 2: exactly one row, the winner's.
	const racers = 16
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []store.OIDCKey
		start   = make(chan struct{})
	)
	for i := range racers {
		st := a
		if i%2 == 1 {
			st = b
		}
		k := newOIDCKey(2, fmt.Sprintf("race-%02d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ok, err := st.InsertOIDCKey(ctx, k)
			if err != nil {
				t.Errorf("InsertOIDCKey(%s): %v", k.KID, err)
				return
			}
			if ok {
				mu.Lock()
				winners = append(winners, k)
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d of %d concurrent inserts of epoch 2 reported inserted, want 1", len(winners), racers)
	}
	k2 := winners[0]
	checkOIDCKeys(t, a, k1, k2)
	checkOIDCKeys(t, b, k1, k2)

	// Keys are listed by epoch whatever the order they were written in;
	// epochs are 64-bit.
	k4, k3 := newOIDCKey(1<<40, "four"), newOIDCKey(3, "three")
	for _, k := range []store.OIDCKey{k4, k3} {
		if ok, err := b.InsertOIDCKey(ctx, k); err != nil || !ok {
			t.Fatalf("InsertOIDCKey(epoch %d) = %v, %v; want inserted", k.Epoch, ok, err)
		}
	}
	checkOIDCKeys(t, a, k1, k2, k3, k4)

	// Deleting drops the epochs below the bound, once.
	if n, err := a.DeleteOIDCKeys(ctx, 3); err != nil || n != 2 {
		t.Errorf("DeleteOIDCKeys(3) = %d, %v; want 2", n, err)
	}
	if n, err := b.DeleteOIDCKeys(ctx, 3); err != nil || n != 0 {
		t.Errorf("DeleteOIDCKeys(3) again = %d, %v; want 0", n, err)
	}
	checkOIDCKeys(t, b, k3, k4)
}
