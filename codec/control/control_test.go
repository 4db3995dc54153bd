package control

import (
	"bytes"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/terratask/terratask/codec"
)

// BenchmarkPayloadRoundTrip compares a round trip (encode, then decode) of
// a 4 KiB payload through the secret key's codec (the baseline, as before
// per-org keys), through the control plane's codec under an org's key (the
// org's codec derived once and cached), and through a runner's org codec.
func BenchmarkPayloadRoundTrip(b *testing.B) {
	key := bytes.Repeat([]byte{4}, codec.KeySize)
	master, err := codec.New(key)
	if err != nil {
		b.Fatal(err)
	}
	ctl, err := New(key)
	if err != nil {
		b.Fatal(err)
	}
	org, err := ctl.Org("acme")
	if err != nil {
		b.Fatal(err)
	}
	p, err := converter.GetDefaultDataConverter().ToPayload(strings.Repeat("x", 4096))
	if err != nil {
		b.Fatal(err)
	}
	ctlOrg := ctl.converter("acme", nil).codec
	for name, c := range map[string]converter.PayloadCodec{"secret-key": master, "control-org": ctlOrg, "runner-org": org} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				enc, err := c.Encode([]*commonpb.Payload{p})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
