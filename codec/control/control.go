// Package control is the control plane's payload codec: it holds
// terratask's secret key (the master key) and derives every org's codec
// from it. Only the control plane (API servers, the control-plane worker)
// imports it; a runner host holds its org's codec (codec.NewOrg) and never
// this package (the test of package boundary keeps it so).
package control

import (
	"context"
	"fmt"
	"sync"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/terratask/terratask/codec"
	"github.com/terratask/terratask/secret/master"
	"github.com/terratask/terratask/task"
)

// Codec is the control plane's codec: it holds terratask's secret key (the
// master key), decrypts every payload (under the secret key, or under any
// org's key, derived from it on demand) and encrypts each payload under the
// key of the org it belongs to, so a runner host, which holds only its org's
// key (codec.NewOrg), reads its own org's payloads and no other's:
//   - an activity input for a runner's queue (task.QueueOrg) is encrypted
//     under that runner's org key;
//   - a client call whose context names an org (WithOrg: the API's starts,
//     signals and updates) is encrypted under that org's key;
//   - a task workflow's own payloads (its result, queries, updates) are
//     encrypted under the key of the org whose key encrypted its input;
//   - anything else (control-plane activities, workflows started with the
//     secret key's payloads) stays under the secret key's payload key.
//
// A task input encrypted under an org's key must name that org: a runner
// host of org B cannot start a task of org A (see checkOrg); one not
// encrypted at all is marked, and the task workflow refuses it.
type Codec struct {
	master  *codec.Codec
	secrets [][]byte // current first, then old

	mu   sync.Mutex
	orgs map[string]*codec.Codec
}

// New returns the control plane's codec for the secret key and the old
// keys of earlier rotations.
func New(current []byte, old ...[]byte) (*Codec, error) {
	m, err := codec.New(current, old...)
	if err != nil {
		return nil, err
	}
	keys := [][]byte{append([]byte(nil), current...)}
	for _, k := range old {
		keys = append(keys, append([]byte(nil), k...))
	}
	return &Codec{master: m, secrets: keys, orgs: map[string]*codec.Codec{}}, nil
}

// maxOrgCodecs bounds the org codecs kept derived.
const maxOrgCodecs = 4096

// Org returns org's codec: what a runner of org holds.
func (c *Codec) Org(org string) (*codec.Codec, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if oc, ok := c.orgs[org]; ok {
		return oc, nil
	}
	keys := make([][]byte, len(c.secrets))
	for i, k := range c.secrets {
		ok, err := master.OrgKey(k, org)
		if err != nil {
			return nil, err
		}
		keys[i] = ok
	}
	oc, err := codec.NewOrg(org, keys[0], keys[1:]...)
	if err != nil {
		return nil, err
	}
	if len(c.orgs) < maxOrgCodecs {
		c.orgs[org] = oc
	}
	return oc, nil
}

// Master is the codec of the secret key itself.
func (c *Codec) Master() *codec.Codec { return c.master }

// KeyID is the ID of the secret key's payload key.
func (c *Codec) KeyID() string { return c.master.KeyID() }

// encoder is the codec that encrypts org's payloads ("": the secret key's).
func (c *Codec) encoder(org string) (*codec.Codec, error) {
	if org == "" {
		return c.master, nil
	}
	return c.Org(org)
}

// Encode encrypts under the secret key's payload key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return c.master.Encode(payloads)
}

// Decode decrypts each payload under the key it names: the secret key's, or
// the org key of the org it names.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != codec.Encoding {
			out[i] = p
			continue
		}
		k, err := c.encoder(string(p.GetMetadata()[codec.MetadataOrg]))
		if err != nil {
			return nil, err
		}
		dec, err := k.Decode([]*commonpb.Payload{p})
		if err != nil {
			return nil, err
		}
		out[i] = dec[0]
	}
	return out, nil
}

// ForOrg is the codec of org's own callers (the codec route): it encrypts
// under org's key and decrypts only org's payloads; every other payload
// (another org's, the secret key's) is returned as it is, still encrypted.
func (c *Codec) ForOrg(org string) (converter.PayloadCodec, error) {
	oc, err := c.Org(org)
	if err != nil {
		return nil, err
	}
	return orgOnly{oc}, nil
}

type orgOnly struct{ c *codec.Codec }

func (o orgOnly) Encode(p []*commonpb.Payload) ([]*commonpb.Payload, error) { return o.c.Encode(p) }

func (o orgOnly) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != codec.Encoding || string(p.GetMetadata()[codec.MetadataOrg]) != o.c.Org() {
			out[i] = p
			continue
		}
		dec, err := o.c.Decode([]*commonpb.Payload{p})
		if err != nil {
			return nil, err
		}
		out[i] = dec[0]
	}
	return out, nil
}

// DataConverter is the control plane's data converter (see Codec).
func (c *Codec) DataConverter() converter.DataConverter { return c.converter("", nil) }

// FailureConverter encodes failures with the control plane's data converter,
// messages and stack traces inside the encrypted attributes.
func (c *Codec) FailureConverter() converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          c.DataConverter(),
		EncodeCommonAttributes: true,
	})
}

func (c *Codec) converter(org string, learn *learned) *controlConverter {
	pc := &controlCodec{c: c, org: org, learn: learn}
	return &controlConverter{DataConverter: converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), pc), c: c, codec: pc}
}

// learned is the org of one workflow execution, learnt from the first
// payload under an org key it decodes (its input).
type learned struct {
	mu  sync.Mutex
	org string
}

func (l *learned) get() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.org
}

func (l *learned) learn(org string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.org == "" {
		l.org = org
	}
}

// controlCodec encrypts under org's key, or the learnt org's, or the
// secret key's; it decrypts everything.
type controlCodec struct {
	c     *Codec
	org   string
	learn *learned
}

func (p *controlCodec) encodeOrg() string {
	if p.org == "" && p.learn != nil {
		return p.learn.get()
	}
	return p.org
}

func (p *controlCodec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	k, err := p.c.encoder(p.encodeOrg())
	if err != nil {
		return nil, err
	}
	return k.Encode(payloads)
}

func (p *controlCodec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	if p.learn != nil {
		for _, pl := range payloads {
			if org := string(pl.GetMetadata()[codec.MetadataOrg]); org != "" {
				p.learn.learn(org)
				break
			}
		}
	}
	return p.c.Decode(payloads)
}

// controlConverter is the data converter of one encryption choice.
type controlConverter struct {
	converter.DataConverter
	c     *Codec
	codec *controlCodec
}

var (
	_ workflow.ContextAware                           = (*controlConverter)(nil)
	_ converter.DataConverterWithSerializationContext = (*controlConverter)(nil)
)

// WithContext picks the org a client call names (codec.WithOrg).
func (d *controlConverter) WithContext(ctx context.Context) converter.DataConverter {
	if org := codec.OrgOf(ctx); org != "" && d.codec.org == "" {
		return d.c.converter(org, nil)
	}
	return d
}

// WithWorkflowContext picks the org a workflow context names
// (codec.WorkflowWithOrg), unless the choice is made already.
func (d *controlConverter) WithWorkflowContext(ctx workflow.Context) converter.DataConverter {
	if org := codec.WorkflowOrgOf(ctx); org != "" && d.codec.org == "" {
		return d.c.converter(org, nil)
	}
	return d
}

// WithSerializationContext picks a runner queue's org for an activity's
// payloads, and gives each workflow execution its own learnt org.
func (d *controlConverter) WithSerializationContext(sc converter.SerializationContext) converter.DataConverter {
	switch sc := sc.(type) {
	case converter.ActivitySerializationContext:
		if org := task.QueueOrg(sc.TaskQueue); org != "" {
			return d.c.converter(org, nil)
		}
	case converter.WorkflowSerializationContext:
		if d.codec.org == "" && d.codec.learn == nil {
			return d.c.converter("", &learned{})
		}
	}
	return d
}

// FromPayloads checks what checkOrg checks, beside decoding.
func (d *controlConverter) FromPayloads(payloads *commonpb.Payloads, valuePtrs ...interface{}) error {
	if err := d.DataConverter.FromPayloads(payloads, valuePtrs...); err != nil {
		return err
	}
	for i, v := range valuePtrs {
		if i < len(payloads.GetPayloads()) {
			if err := checkOrg(payloads.GetPayloads()[i], v); err != nil {
				return err
			}
		}
	}
	return nil
}

// FromPayload checks what checkOrg checks, beside decoding.
func (d *controlConverter) FromPayload(payload *commonpb.Payload, valuePtr interface{}) error {
	if err := d.DataConverter.FromPayload(payload, valuePtr); err != nil {
		return err
	}
	return checkOrg(payload, valuePtr)
}

// checkOrg refuses a task input encrypted under one org's key that names
// another org: only the control plane (the secret key) may start a task for
// any org.
//
// It also marks an input that came unencrypted (task.Input.Plain), which
// the workflow refuses.
func checkOrg(p *commonpb.Payload, v any) error {
	in, ok := v.(*task.Input)
	if !ok {
		return nil
	}
	in.Plain = string(p.GetMetadata()[converter.MetadataEncoding]) != codec.Encoding
	org := string(p.GetMetadata()[codec.MetadataOrg])
	if org != "" && in.Org != org {
		return fmt.Errorf("a task input encrypted under org %q's key names org %q: refused", org, in.Org)
	}
	return nil
}
